/**
 * A reported recipient with its bounce classification: the report's status and diagnostic
 * are turned into the SMTP reply the classifier understands.
 */
import type { Classifier } from '../classifier.js';
import { enhancedOf, parseReplyText } from '../reply-text.js';
import type { SmtpReply } from '../../delivery/reply.js';
import type { ReportedRecipient } from './types.js';

/** What a report says of one recipient, before classification. */
export type RecipientFacts = Omit<ReportedRecipient, 'bounce'>;

const STATUS = /\b([245])\.(\d{1,3})\.(\d{1,3})\b/;

/** The RFC 3463 status in a field or text ("5.1.1 (user unknown)" gives "5.1.1"). */
export function statusOf(text: string | undefined): string | undefined {
  const m = text ? STATUS.exec(text) : null;
  return m ? `${m[1]}.${m[2]}.${m[3]}` : undefined;
}

/**
 * The reply a recipient's report stands for. The diagnostic's own reply code and enhanced
 * code win; a diagnostic without a reply code gets 550 or 450 from the status class (or from
 * the action when there is no status), and the status stands in for a missing enhanced code.
 */
export function replyOf(r: RecipientFacts): SmtpReply {
  const text = r.diagnostic ?? '';
  const parsed = text ? parseReplyText(text) : null;
  if (parsed) return { ...parsed, enhanced: enhancedOf(parsed) ?? r.status ?? null };
  return { code: fallbackCode(r), enhanced: r.status ?? null, text };
}

function fallbackCode(r: RecipientFacts): number {
  const cls = r.status?.[0];
  if (cls === '5') return 550;
  if (cls === '4') return 450;
  if (cls === '2') return 250;
  if (r.action === 'delivered' || r.action === 'relayed' || r.action === 'expanded') return 250;
  return r.action === 'delayed' ? 450 : 550;
}

/** Adds the classification to what a report says of a recipient. */
export function classified(facts: RecipientFacts, classifier: Classifier): ReportedRecipient {
  return { ...facts, bounce: classifier.classify(replyOf(facts)) };
}
