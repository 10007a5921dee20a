/** Builds the records of delivery outcomes from a recipient and what happened to it. */
import type { SmtpReply } from '../delivery/reply.js';
import type { QueuedRecipient } from '../spool/spool.js';
import type { Suppression } from '../feedback/suppression.js';
import type {
  AdminActionRecord,
  SuppressedRecord,
  AttemptDetails,
  AttemptRecord,
  ExpirationRecord,
} from './types.js';

/** The record of one attempt for one recipient. */
export function attemptRecord(
  type: AttemptRecord['type'],
  r: QueuedRecipient,
  details: AttemptDetails,
  at: number,
  nextAttemptAt?: number,
): AttemptRecord {
  return {
    type,
    at: new Date(at).toISOString(),
    ...about(r),
    sender: r.sender,
    ...details,
    ...(nextAttemptAt !== undefined
      ? { nextAttemptAt: new Date(nextAttemptAt).toISOString() }
      : {}),
  };
}

/** The record of a recipient that reached its maximum age. */
export function expirationRecord(
  r: QueuedRecipient,
  at: number,
  reply: SmtpReply,
  lastReply?: SmtpReply,
): ExpirationRecord {
  return {
    type: 'Expiration',
    at: new Date(at).toISOString(),
    ...about(r),
    sender: r.sender,
    attempts: r.attempts,
    ageMs: at - r.receivedAt,
    reply,
    bounce: { category: 'message-expired', class: 'soft', rule: 'expiration' },
    ...(lastReply ? { lastReply } : {}),
  };
}

/** The record of an operator's purge or move of one recipient. */
export function adminRecord(
  r: QueuedRecipient,
  action: 'purge' | 'move',
  to: { queue?: string; pool?: string },
  reason: string,
  at: number,
): AdminActionRecord {
  return {
    type: 'AdminAction',
    at: new Date(at).toISOString(),
    action,
    ...about(r),
    ...(action === 'move' ? { to } : {}),
    reason,
  };
}

/** The record of a recipient ended before an attempt because its address is suppressed. */
export function suppressedRecord(r: QueuedRecipient, s: Suppression, at: number): SuppressedRecord {
  return {
    type: 'Suppressed',
    at: new Date(at).toISOString(),
    ...about(r),
    stage: 'attempt',
    suppression: { reason: s.reason, source: s.source, since: s.at },
  };
}

/** The fields every record about one recipient has. */
function about(r: QueuedRecipient) {
  return {
    messageId: r.messageId,
    recipientId: r.id,
    recipient: r.address,
    domain: r.domain,
    queue: r.queue,
  };
}
