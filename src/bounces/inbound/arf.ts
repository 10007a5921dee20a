/**
 * The machine-readable part of an abuse feedback report, message/feedback-report
 * (RFC 5965 §3.1): one block of fields, some of which may repeat.
 */
import { cleanAddress, field, fields, parseFieldBlocks, type FieldBlock } from './fields.js';
import type { ComplaintReport } from './types.js';

/** Parses a feedback-report part; null when it has no Feedback-Type. */
export function parseFeedbackReport(text: string): ComplaintReport | null {
  // RFC 5965 puts every field in one block; a blank line some reporters add is tolerated.
  const block: FieldBlock = parseFieldBlocks(text).flat();
  const feedbackType = field(block, 'feedback-type');
  if (!feedbackType) return null;
  const report: ComplaintReport = {
    feedbackType: feedbackType.toLowerCase().split(/[\s;]/)[0]!,
    originalRcptTo: fields(block, 'original-rcpt-to').map(cleanAddress).filter(Boolean),
  };
  const set = <K extends keyof ComplaintReport>(key: K, value: ComplaintReport[K] | undefined) => {
    if (value) report[key] = value;
  };
  set('userAgent', field(block, 'user-agent'));
  set('version', field(block, 'version'));
  set('originalMailFrom', mailFrom(field(block, 'original-mail-from')));
  // "Received-Date" is the name in the drafts some reporters still follow.
  set('arrivalDate', field(block, 'arrival-date') ?? field(block, 'received-date'));
  set('sourceIp', field(block, 'source-ip'));
  const domains = fields(block, 'reported-domain').filter(Boolean);
  if (domains.length > 0) report.reportedDomain = domains;
  return report;
}

/** Original-Mail-From may be "<>" (a bounce was reported); that is kept as "<>". */
function mailFrom(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  return /^<\s*>$/.test(value.trim()) ? '<>' : cleanAddress(value);
}
