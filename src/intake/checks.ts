/**
 * Deliverability checks at intake: what would hurt delivery or the sender's reputation is
 * stopped before it is queued (or, as configured, let through with a warning in the Reception
 * record). Each check has a stable reason, given in the refusal, the Rejected record and the
 * warning: bad-structure, unknown-maildomain, dkim-unaligned, no-list-unsubscribe.
 *
 * Message-ID and Date are not checks: intake adds them when missing (message.ts); the size
 * limit is enforced while the message is received (SIZE, RFC 1870).
 */
import type { Config } from '../config/schema.js';
import type { SigningPlan } from '../maildomains/maildomains.js';
import { fieldValue, type MessageHeader } from './header.js';

export type CheckReason =
  'bad-structure' | 'unknown-maildomain' | 'dkim-unaligned' | 'no-list-unsubscribe';

/** A check that failed: its reason and the SMTP reply a refusal gives. */
export interface CheckFailure {
  reason: CheckReason;
  code: number;
  enhanced: string;
  text: string;
}

/** A check that failed in warn mode, kept in the Reception record. */
export interface CheckWarning {
  check: CheckReason;
  text: string;
}

/** What the checks made of a message: the refusal, if any, and the warnings. */
export interface CheckVerdict {
  refusal?: CheckFailure;
  warnings: CheckWarning[];
}

/** What the checks look at, besides the header. */
export interface CheckInput {
  header: MessageHeader;
  /** The signing plan of the From address; absent when its domain is no maildomain's. */
  plan?: SigningPlan;
  /** Whether the message's queue is a bulk queue. */
  bulk: boolean;
  /** How many maildomains are configured (fromMaildomain "auto" needs at least one). */
  maildomains: number;
}

type Check = (input: CheckInput, config: Config['checks']) => CheckFailure | undefined;

const CHECKS: [keyof Omit<Config['checks'], 'allowedFromDomains'>, Check][] = [
  ['structure', structure],
  ['fromMaildomain', fromMaildomain],
  ['dkimAlignment', dkimAlignment],
  ['listUnsubscribe', listUnsubscribe],
];

/** Runs every check that is not off; the first refusal wins, warnings accumulate. */
export function runChecks(input: CheckInput, config: Config['checks']): CheckVerdict {
  const warnings: CheckWarning[] = [];
  for (const [key, check] of CHECKS) {
    const action = actionOf(config[key], input.maildomains);
    if (action === 'off') continue;
    const failure = check(input, config);
    if (!failure) continue;
    if (action === 'refuse') return { refusal: failure, warnings };
    warnings.push({ check: failure.reason, text: failure.text });
  }
  return { warnings };
}

/** "auto" refuses once the installation has maildomains, and looks the other way before. */
function actionOf(setting: string, maildomains: number): 'refuse' | 'warn' | 'off' {
  if (setting === 'auto') return maildomains > 0 ? 'refuse' : 'off';
  return setting as 'refuse' | 'warn' | 'off';
}

function structure({ header }: CheckInput): CheckFailure | undefined {
  if (header.problems.length === 0) return undefined;
  const text = `Message structure is not RFC 5322: ${header.problems.slice(0, 3).join('; ')}`;
  return { reason: 'bad-structure', code: 554, enhanced: '5.6.0', text };
}

function fromMaildomain(i: CheckInput, config: Config['checks']): CheckFailure | undefined {
  if (i.plan || !i.header.from) return undefined;
  const domain = i.header.from.slice(i.header.from.lastIndexOf('@') + 1);
  if (config.allowedFromDomains.some((d) => domain === d || domain.endsWith(`.${d}`))) {
    return undefined;
  }
  const text = `From domain ${domain} is not a maildomain of this engine`;
  return { reason: 'unknown-maildomain', code: 550, enhanced: '5.7.1', text };
}

/**
 * DMARC alignment by DKIM (RFC 7489 §3.1.1, relaxed): the maildomain's mail must be signed by
 * a key whose d= is the From domain or shares its organisational domain; the signing domain is
 * the maildomain or the one it names, so an active key there is enough.
 */
function dkimAlignment({ plan, header }: CheckInput): CheckFailure | undefined {
  if (!plan || plan.dkim.length > 0 || !header.from) return undefined;
  const text =
    `Maildomain ${plan.maildomain} has no active domain key; ` +
    'mail from it would not be DKIM-signed (DMARC alignment)';
  return { reason: 'dkim-unaligned', code: 550, enhanced: '5.7.1', text };
}

/** RFC 8058 §3.1: an https URI in List-Unsubscribe and the exact List-Unsubscribe-Post value. */
function listUnsubscribe({ bulk, header }: CheckInput): CheckFailure | undefined {
  if (!bulk) return undefined;
  const link = fieldValue(header, 'list-unsubscribe');
  const post = fieldValue(header, 'list-unsubscribe-post');
  if (link && /<https:\/\/[^>]+>/i.test(link) && /^List-Unsubscribe=One-Click$/i.test(post ?? '')) {
    return undefined;
  }
  const missing = !link
    ? 'List-Unsubscribe'
    : !/<https:\/\/[^>]+>/i.test(link)
      ? 'an https URI in List-Unsubscribe'
      : 'List-Unsubscribe-Post: List-Unsubscribe=One-Click';
  const text = `Bulk mail needs one-click unsubscribe (RFC 8058): ${missing} is missing`;
  return { reason: 'no-list-unsubscribe', code: 550, enhanced: '5.7.1', text };
}
