/**
 * Signing a message at intake, in the order receivers need: S/MIME first for a certified
 * account (the signature covers the content entity), then DKIM over the whole result (the
 * DKIM signature covers the S/MIME structure, and nothing after it changes the bytes). Both
 * run on the signing workers (sign-offload.ts), off the event loop.
 */
import type { SigningPlan } from '../maildomains/maildomains.js';
import { wireForm } from './dkim-canon.js';
import { signOffLoop } from './sign-offload.js';

/** What was signed, for the Reception record. */
export interface SignatureSummary {
  dkim: { domain: string; selector: string; algorithm: string }[];
  smime?: { address: string; fingerprint: string };
}

/**
 * The message signed as its plan says, and what signed it. Rejects with GridpostError when a
 * signer refuses the message (E_CERT_* for a certificate that may not sign it, E_BAD_MESSAGE).
 */
export async function signForPlan(
  body: Buffer,
  plan: SigningPlan,
  now: Date,
): Promise<{ body: Buffer; signatures: SignatureSummary }> {
  const wire = wireForm(body);
  const signed = await signOffLoop(wire, plan.dkim, plan.account, now);
  const signatures: SignatureSummary = {
    dkim: plan.dkim.map(({ domain, selector, algorithm }) => ({ domain, selector, algorithm })),
  };
  if (plan.account) {
    signatures.smime = {
      address: plan.account.address,
      fingerprint: plan.account.info.fingerprint,
    };
  }
  const rest = signed.body ?? wire;
  const out = signed.fields ? Buffer.concat([Buffer.from(signed.fields, 'latin1'), rest]) : rest;
  return { body: out, signatures };
}
