/**
 * Records: one typed accounting event about a message or a recipient. Records are the product's
 * feedback (accounting files, the API, later webhooks), never diagnostics: those go to pino.
 */
import type { Classification } from '../bounces/classifier.js';
import type { InboundFormat } from '../bounces/inbound/types.js';
import type { SmtpReply } from '../delivery/reply.js';

export const RECORD_TYPES = [
  'Reception',
  'Delivery',
  'TransientFailure',
  'Bounce',
  'Expiration',
  'Rejected',
  'AdminAction',
  'Suppressed',
  'RuleTriggered',
  'AsyncBounce',
  'Complaint',
] as const;
export type RecordType = (typeof RECORD_TYPES)[number];

/** Fields every record has. `at` is ISO-8601 UTC. */
interface RecordBase {
  type: RecordType;
  at: string;
  messageId?: string;
  queue?: string;
}

/** A message accepted into the spool (one record per message, listing its recipients). */
export interface ReceptionRecord extends RecordBase {
  type: 'Reception';
  messageId: string;
  sender: string;
  size: number;
  recipients: { id: string; address: string }[];
  via: 'smtp' | 'http';
  client: { ip?: string; user?: string; apiKey?: string };
  /** The maildomain of the From address, when it is one. */
  maildomain?: string;
  /** The DKIM signatures and the S/MIME signature intake added. */
  signatures?: {
    dkim: { domain: string; selector: string; algorithm: string }[];
    smime?: { address: string; fingerprint: string };
  };
  /** Intake checks in warn mode that the message failed (checks.*: warn). */
  warnings?: { check: string; text: string }[];
}

/** Where and how one delivery attempt went: the remote host, our source, the reply, TLS. */
export interface AttemptDetails {
  attempt: number;
  /** The egress source and the site (MX rollup) of the attempt. */
  source?: string;
  site?: string;
  /** The response rule that matched the reply, and what it did. */
  rule?: { name: string; action: string };
  /** What the reply means for the sender (failures only): bounce category, class, rule. */
  bounce?: Classification;
  mxHost?: string;
  mxIp?: string;
  localIp?: string;
  tls?: boolean;
  stage?: string;
  reply: SmtpReply;
  /**
   * Milliseconds: since reception, queued before this attempt (since it became due), and
   * spent in the SMTP transaction.
   */
  timings: { sinceReceptionMs: number; queuedMs: number; transactionMs?: number };
}

/** Outcome of an attempt for one recipient. */
export interface AttemptRecord extends RecordBase, AttemptDetails {
  type: 'Delivery' | 'TransientFailure' | 'Bounce';
  messageId: string;
  recipientId: string;
  recipient: string;
  sender: string;
  domain: string;
  /** For TransientFailure: when the next attempt is due (ISO-8601). */
  nextAttemptAt?: string;
}

/** A recipient that reached its queue's maximum age without a final outcome. */
export interface ExpirationRecord extends RecordBase {
  type: 'Expiration';
  messageId: string;
  recipientId: string;
  recipient: string;
  sender: string;
  domain: string;
  attempts: number;
  ageMs: number;
  reply: SmtpReply;
  lastReply?: SmtpReply;
  /** Always category message-expired, class soft. */
  bounce: Classification;
}

/** Something refused at intake: a recipient (relay denied) or a whole message (too big...). */
export interface RejectedRecord extends RecordBase {
  type: 'Rejected';
  via: 'smtp' | 'http';
  sender?: string;
  recipient?: string;
  reason: string;
  reply: SmtpReply;
  client: { ip?: string; user?: string; apiKey?: string };
}

/** An operator acted on a recipient: purged it (its final record) or moved it. */
export interface AdminActionRecord extends RecordBase {
  type: 'AdminAction';
  action: 'purge' | 'move';
  messageId: string;
  recipientId: string;
  recipient: string;
  domain: string;
  /** For a move: where the recipient went. */
  to?: { queue?: string; pool?: string };
  reason: string;
}

/**
 * A recipient not sent to because its address is on the suppression list: refused at intake
 * (no recipient id then) or ended before an attempt.
 */
export interface SuppressedRecord extends RecordBase {
  type: 'Suppressed';
  recipient: string;
  recipientId?: string;
  domain: string;
  stage: 'intake' | 'attempt';
  /** Why the address is suppressed, and since when. */
  suppression: { reason: string; source: string; since: string };
  via?: 'smtp' | 'http';
}

/** A feedback rule acted on an address (it had `count` matching records within the window). */
export interface RuleTriggeredRecord extends RecordBase {
  type: 'RuleTriggered';
  rule: string;
  recipient: string;
  domain: string;
  action: 'suppress' | 'tag' | 'event';
  count: number;
  tag?: string;
  /** The record whose arrival triggered the rule. */
  triggeredBy: { seq: number; type: string };
}

/** How an inbound report was tied to the recipient it is about. */
export type MatchedBy = 'return-path' | 'quoted-return-path';

/**
 * A report that came back after the recipient's delivery was accepted: a DSN (RFC 3464) or a
 * non-standard bounce naming a failed recipient, or a delay warning.
 */
export interface AsyncBounceRecord extends RecordBase {
  type: 'AsyncBounce';
  messageId: string;
  recipientId: string;
  recipient: string;
  domain: string;
  sender?: string;
  action: 'failed' | 'delayed';
  /** RFC 3463 status, diagnostic and hosts as the report gives them. */
  status?: string;
  diagnostic?: string;
  remoteMta?: string;
  reportingMta?: string;
  format: InboundFormat;
  bounce: Classification;
  matchedBy: MatchedBy;
  /** The address the report names, when it differs from the recipient (an alias, a forward). */
  reportedAddress?: string;
}

/**
 * The ARF feedback types that are a recipient's complaint (RFC 5965 §7.3): they count as
 * complained and suppress. not-spam (a recipient taking a spam verdict back) and
 * auth-failure (a DMARC/SPF/DKIM failure report, RFC 6591) are recorded but do neither.
 */
export const COMPLAINT_FEEDBACK_TYPES: readonly string[] = ['abuse', 'fraud', 'virus', 'other'];

/** Whether a Complaint record is a recipient's complaint (see COMPLAINT_FEEDBACK_TYPES). */
export function isUserComplaint(r: { feedbackType: string }): boolean {
  return COMPLAINT_FEEDBACK_TYPES.includes(r.feedbackType.toLowerCase());
}

/** A feedback-loop report (ARF, RFC 5965) about a recipient: usually a complaint. */
export interface ComplaintRecord extends RecordBase {
  type: 'Complaint';
  messageId: string;
  recipientId: string;
  recipient: string;
  domain: string;
  sender?: string;
  /** abuse, fraud, virus, other, not-spam... (RFC 5965 §7.3). */
  feedbackType: string;
  userAgent?: string;
  sourceIp?: string;
  arrivalDate?: string;
  /** Who sent the report (its From). */
  reportedBy?: string;
  matchedBy: MatchedBy;
}

export type GridpostRecord =
  | ReceptionRecord
  | AttemptRecord
  | ExpirationRecord
  | RejectedRecord
  | AdminActionRecord
  | SuppressedRecord
  | RuleTriggeredRecord
  | AsyncBounceRecord
  | ComplaintRecord;

/** A record as stored, with its position in the store (a cursor for later consumers). */
export type StoredRecord = GridpostRecord & { seq: number };
