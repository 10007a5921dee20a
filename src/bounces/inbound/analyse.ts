/**
 * What an inbound message is: a complaint (ARF), a bounce or delay warning (a DSN, or one of
 * the non-standard formats), an auto-reply, or none of those. The order matters: a complaint
 * quotes the original message, a DSN may carry Auto-Submitted, and an auto-reply must never
 * be read as a bounce; the non-standard formats are tried only on messages that look like
 * reports, so that ordinary mail quoting a bounce is not taken for one.
 *
 * Input beyond MAX_INPUT (10 MiB) is ignored. Nothing here throws on bad input: a message
 * that cannot be read is 'not-bounce'.
 */
import { Classifier } from '../classifier.js';
import { parseFeedbackReport } from './arf.js';
import { autoReplySignal, BOUNCE_SUBJECT, weakAutoReply as weakSignal } from './auto-reply.js';
import { parseDeliveryStatus } from './dsn.js';
import { cleanAddress } from './fields.js';
import { formatOf, matchFormat, type FormatMatch, type ReportContext } from './formats.js';
import { header, readMessage, type InboundMessage } from './message.js';
import { findOriginal } from './original.js';
import { classified, type RecipientFacts } from './recipient.js';
import { anyOf } from './pattern.js';
import type { InboundAnalysis, InboundFormat, InboundKind } from './types.js';

export { MAX_INPUT } from './message.js';

const DEFAULT_CLASSIFIER = new Classifier();

/** Analyses one inbound message; never throws. */
export async function analyseMessage(
  raw: Buffer | string,
  classifier: Classifier = DEFAULT_CLASSIFIER,
): Promise<InboundAnalysis> {
  try {
    const msg = await readMessage(raw);
    const report = complaint(msg) ?? deliveryStatus(msg, classifier);
    if (report) return report;
    const wrapped = await wrappedReport(msg, classifier);
    if (wrapped) return wrapped;
    // A report from a mailer may carry Auto-Submitted: auto-replied and still be a bounce;
    // anything else that shows an auto-reply signal is one, whatever its text says.
    const first = looksLikeReport(msg)
      ? (nonStandard(msg, classifier) ?? autoReply(msg))
      : (autoReply(msg) ?? nonStandard(msg, classifier));
    return first ?? weakAutoReply(msg) ?? notBounce(msg);
  } catch {
    // A bug in a parser must not lose the message for its caller; it is simply not a report.
    return { kind: 'not-bounce', format: 'none', recipients: [] };
  }
}

/**
 * A report that a gateway wrapped, whole, in a message/rfc822 part of its own message: looked
 * into once, and only when the outer message itself looks like a report.
 */
async function wrappedReport(
  msg: InboundMessage,
  classifier: Classifier,
): Promise<InboundAnalysis | null> {
  if (!msg.reportType && !looksLikeReport(msg)) return null;
  const part = msg.parts.find(
    (p) => p.type === 'message/rfc822' && /^content-type:\s*multipart\/report/im.test(p.content),
  );
  if (!part) return null;
  const inner = await readMessage(part.content);
  return complaint(inner) ?? deliveryStatus(inner, classifier);
}

function base(msg: InboundMessage, kind: InboundKind, format: InboundFormat): InboundAnalysis {
  const out: InboundAnalysis = { kind, format, recipients: [] };
  if (msg.from) out.from = msg.from;
  if (msg.subject !== undefined) out.subject = msg.subject;
  return out;
}

function withOriginal(out: InboundAnalysis, msg: InboundMessage): InboundAnalysis {
  const original = findOriginal(msg);
  if (original) out.original = original;
  return out;
}

function notBounce(msg: InboundMessage): InboundAnalysis {
  return base(msg, 'not-bounce', 'none');
}

/** An ARF report: a message/feedback-report part with a Feedback-Type. */
function complaint(msg: InboundMessage): InboundAnalysis | null {
  const part = msg.parts.find((p) => p.type === 'message/feedback-report');
  const report = part ? parseFeedbackReport(part.content) : null;
  if (!report) return null;
  return withOriginal({ ...base(msg, 'complaint', 'arf'), complaint: report }, msg);
}

const STATUS_PARTS = new Set(['message/delivery-status', 'message/global-delivery-status']);

/** A DSN: a delivery-status part naming at least one recipient. */
function deliveryStatus(msg: InboundMessage, classifier: Classifier): InboundAnalysis | null {
  const part = msg.parts.find((p) => STATUS_PARTS.has(p.type));
  if (!part) return null;
  const status = parseDeliveryStatus(part.content);
  if (status.recipients.length === 0) return null;
  const kind = kindOf(status.recipients);
  const out = base(msg, kind, 'rfc3464');
  if (status.reportingMta) out.reportingMta = status.reportingMta;
  // A DSN that reports only deliveries (NOTIFY=SUCCESS) is not a bounce: no recipients.
  if (kind !== 'not-bounce') {
    out.recipients = status.recipients.map((r) => classified(r, classifier));
  }
  return withOriginal(out, msg);
}

/** Any failed recipient makes a bounce; else any delayed one a delay warning. */
function kindOf(recipients: RecipientFacts[]): InboundKind {
  if (recipients.some((r) => r.action === 'failed')) return 'bounce';
  if (recipients.some((r) => r.action === 'delayed')) return 'delay';
  return 'not-bounce';
}

function autoReply(msg: InboundMessage): InboundAnalysis | null {
  const signal = autoReplySignal(msg);
  if (!signal) return null;
  return { ...base(msg, 'auto-reply', 'auto-reply'), autoReply: signal };
}

function weakAutoReply(msg: InboundMessage): InboundAnalysis | null {
  const signal = weakSignal(msg);
  if (!signal) return null;
  return { ...base(msg, 'auto-reply', 'auto-reply'), autoReply: signal };
}

/** Senders of delivery reports. */
const DAEMON = anyOf(
  [
    String.raw`mailer-daemon\b`,
    String.raw`postmaster\b`,
    String.raw`mail-daemon\b`,
    String.raw`mdaemon\b`,
    String.raw`mail\.delivery\.system\b`,
    '(?:ndr|bounce|bounces|mailerdaemon)@',
  ],
  { before: '^' },
);

/** Whether the sender or subject says the message is a delivery report. */
function looksLikeReport(msg: InboundMessage): boolean {
  return (
    DAEMON.test(msg.from ?? '') ||
    BOUNCE_SUBJECT.test(msg.subject ?? '') ||
    msg.reportType !== undefined ||
    msg.parts.some((p) => STATUS_PARTS.has(p.type))
  );
}

function nonStandard(msg: InboundMessage, classifier: Classifier): InboundAnalysis | null {
  const context = { bounceLike: looksLikeReport(msg), senderDomain: domainOf(msg.from) };
  const match = matchFormat(msg.text, context) ?? failedRecipientsHeader(msg, context);
  if (!match) return null;
  const own = ownAddresses(msg);
  const recipients = match.recipients.filter((r) => !own.has(r.address.toLowerCase()));
  if (recipients.length === 0) return null;
  const action = match.delay ? 'delayed' : 'failed';
  const out = base(msg, match.delay ? 'delay' : 'bounce', match.format);
  out.recipients = recipients.map((r) => classified({ ...r, action }, classifier));
  return withOriginal(out, msg);
}

/**
 * X-Failed-Recipients (Exim, Gmail) names the failed addresses of a report whose text gives
 * only local parts or none: used when the text names no recipient.
 */
function failedRecipientsHeader(msg: InboundMessage, context: ReportContext): FormatMatch | null {
  const value = header(msg, 'x-failed-recipients');
  if (!value || !context.bounceLike) return null;
  const recipients = value
    .split(',')
    .map((a) => cleanAddress(a))
    .filter((a) => a.includes('@'))
    .map((address): RecipientFacts => ({ address, action: 'failed' }));
  if (recipients.length === 0) return null;
  return { format: formatOf(msg.text, context), recipients, delay: false };
}

function domainOf(address: string | undefined): string | undefined {
  const at = address?.lastIndexOf('@') ?? -1;
  return at >= 0 ? address!.slice(at + 1).toLowerCase() : undefined;
}

/** The report's own sender and recipients: never the failed recipient. */
function ownAddresses(msg: InboundMessage): Set<string> {
  const own = new Set<string>();
  if (msg.from) own.add(msg.from.toLowerCase());
  for (const [name, value] of msg.headers) {
    if (name !== 'to' && name !== 'return-path') continue;
    for (const m of value.matchAll(/[^\s<>",;:]+@[^\s<>",;:]+/g)) own.add(m[0].toLowerCase());
  }
  return own;
}
