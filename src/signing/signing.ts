/**
 * Signing a message at intake, in the order receivers need: S/MIME first for a certified
 * account (the signature covers the content entity), then DKIM over the whole result (the
 * DKIM signature covers the S/MIME structure, and nothing after it changes the bytes).
 */
import type { SigningPlan } from '../maildomains/maildomains.js';
import { signMessage } from './dkim-sign.js';
import { smimeSign } from './smime-sign.js';

/** What was signed, for the Reception record. */
export interface SignatureSummary {
  dkim: { domain: string; selector: string; algorithm: string }[];
  smime?: { address: string; fingerprint: string };
}

/** The message signed as its plan says, and what signed it. */
export async function signForPlan(
  body: Buffer,
  plan: SigningPlan,
  now: Date,
): Promise<{ body: Buffer; signatures: SignatureSummary }> {
  let signed = body;
  const signatures: SignatureSummary = { dkim: [] };
  if (plan.account) {
    signed = smimeSign(signed, plan.account, now);
    signatures.smime = {
      address: plan.account.address,
      fingerprint: plan.account.info.fingerprint,
    };
  }
  if (plan.dkim.length > 0) {
    signed = await signMessage(signed, plan.dkim, now);
    signatures.dkim = plan.dkim.map(({ domain, selector, algorithm }) => ({
      domain,
      selector,
      algorithm,
    }));
  }
  return { body: signed, signatures };
}
