/**
 * The machine-readable half of a delivery status notification: message/delivery-status
 * (RFC 3464 §2) and its internationalised form message/global-delivery-status (RFC 6533 §6).
 * The first block holds the per-message fields, each further one a recipient's.
 */
import { cleanAddress, field, parseFieldBlocks, untyped, type FieldBlock } from './fields.js';
import { statusOf, type RecipientFacts } from './recipient.js';
import type { ReportedRecipient } from './types.js';

/** What a delivery-status part says. */
export interface DeliveryStatus {
  reportingMta?: string;
  recipients: RecipientFacts[];
}

const ACTIONS = new Set<ReportedRecipient['action']>([
  'failed',
  'delayed',
  'delivered',
  'relayed',
  'expanded',
]);

/**
 * Parses a delivery-status part. Recipients without an address are left out, and a recipient
 * repeated with the same action (Sendmail lists each alias expansion) is kept once.
 */
export function parseDeliveryStatus(text: string): DeliveryStatus {
  const blocks = parseFieldBlocks(text);
  let reportingMta: string | undefined;
  const recipients = new Map<string, RecipientFacts>();
  for (const block of blocks) {
    const mta = field(block, 'reporting-mta');
    if (mta && !reportingMta) reportingMta = untyped(mta);
    const r = recipientOf(block);
    const key = r && `${r.address.toLowerCase()} ${r.action}`;
    if (r && key && !recipients.has(key)) recipients.set(key, r);
  }
  return { reportingMta, recipients: [...recipients.values()] };
}

function recipientOf(block: FieldBlock): RecipientFacts | null {
  const final = address(field(block, 'final-recipient'));
  const original = address(field(block, 'original-recipient'));
  // A Final-Recipient that is a local alias ("user@mail-daemon") tells the sender nothing;
  // the address it sent to is the original one.
  const chosen = final && (isRoutable(final) || !original) ? final : original;
  if (!chosen) return null;
  const status = statusOf(field(block, 'status'));
  const diagnostic = field(block, 'diagnostic-code');
  const remoteMta = field(block, 'remote-mta');
  const facts: RecipientFacts = {
    address: chosen,
    action: actionOf(field(block, 'action'), status),
  };
  if (original && original.toLowerCase() !== chosen.toLowerCase()) {
    facts.originalRecipient = original;
  }
  if (status) facts.status = status;
  if (diagnostic && untyped(diagnostic)) facts.diagnostic = untyped(diagnostic);
  if (remoteMta && untyped(remoteMta)) facts.remoteMta = untyped(remoteMta);
  return facts;
}

function address(value: string | undefined): string | undefined {
  const a = value ? cleanAddress(value) : '';
  return a.includes('@') ? a : undefined;
}

function isRoutable(address: string): boolean {
  return address.slice(address.lastIndexOf('@') + 1).includes('.');
}

/**
 * The action, lower-cased and without comments; a missing or unknown one is taken from the
 * status class (RFC 3464 requires the field, some reporters omit it or misspell it).
 */
function actionOf(value: string | undefined, status: string | undefined) {
  const word = value?.toLowerCase().match(/[a-z]+/)?.[0] as ReportedRecipient['action'];
  if (ACTIONS.has(word)) return word;
  if (status?.[0] === '4') return 'delayed';
  if (status?.[0] === '2') return 'delivered';
  return 'failed';
}
