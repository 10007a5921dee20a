/**
 * What the engine makes of a message that came back: a bounce (failed recipients), a delay
 * warning, a complaint (ARF, RFC 5965), an auto-reply, or none of those. The bounce listener
 * turns it into records; `gridpost bounce parse` prints it as JSON.
 */
import type { Classification } from '../classifier.js';

export type InboundKind = 'bounce' | 'delay' | 'complaint' | 'auto-reply' | 'not-bounce';

/** The format a report was recognised as. */
export type InboundFormat =
  | 'rfc3464'
  | 'exchange'
  | 'gmail'
  | 'yahoo'
  | 'qmail'
  | 'exim'
  | 'postfix'
  | 'sendmail'
  | 'domino'
  | 'groupwise'
  | 'smtp32'
  | 'heuristic'
  | 'arf'
  | 'auto-reply'
  | 'none';

/** One recipient a report speaks of (RFC 3464 §2.3, or what a non-standard format says). */
export interface ReportedRecipient {
  /** Final-Recipient (or the address a non-standard report names), without "rfc822;". */
  address: string;
  /** Original-Recipient, when given. */
  originalRecipient?: string;
  action: 'failed' | 'delayed' | 'delivered' | 'relayed' | 'expanded';
  /** The RFC 3463 status, "5.1.1"; absent when the report gives none. */
  status?: string;
  /** Diagnostic-Code without its type ("smtp; "), or the reason text of a non-standard one. */
  diagnostic?: string;
  /** Remote-MTA without "dns;". */
  remoteMta?: string;
  /** Category, class and rule, from the shipped classifier over status and diagnostic. */
  bounce: Classification;
}

/** The machine-readable part of an ARF report (RFC 5965 §3.1). */
export interface ComplaintReport {
  feedbackType: string;
  userAgent?: string;
  version?: string;
  originalMailFrom?: string;
  originalRcptTo: string[];
  arrivalDate?: string;
  sourceIp?: string;
  reportedDomain?: string[];
}

/** The result of analysing one inbound message. */
export interface InboundAnalysis {
  kind: InboundKind;
  format: InboundFormat;
  /** Reporting-MTA of a DSN, without "dns;". */
  reportingMta?: string;
  /** Recipients of a bounce or a delay warning; empty for other kinds. */
  recipients: ReportedRecipient[];
  complaint?: ComplaintReport;
  /** For an auto-reply: the signal that gave it away, e.g. "Auto-Submitted: auto-replied". */
  autoReply?: string;
  /** The returned original message's headers, when the report includes them. */
  original?: { messageId?: string; returnPath?: string; headers: string };
  /** From and Subject of the report itself. */
  from?: string;
  subject?: string;
}
