/**
 * The section scanner behind the non-standard formats: from a start line to an end line, a
 * line that names an address opens a recipient, and the lines after it (up to the next one)
 * are its reason. The formats differ only in their markers and recipient lines (formats.ts).
 */
import { anyOf } from './pattern.js';
import { statusOf, type RecipientFacts } from './recipient.js';

/**
 * An address in report text. The local part excludes separators so that "<a@b>:" and
 * "a@b..." end where the address ends; the domain needs a dot (no local aliases).
 */
export const ADDRESS =
  String.raw`[^\s<>"'(),:;@\[\]]{1,128}` +
  String.raw`@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,10}`;

/**
 * A line that starts with an address, optionally bracketed, listed ("- ", "-- ") or after a
 * label ("Failed Recipient: ", "Unknown user: ", "RCPT TO:<", "Error-for: ").
 */
export const RECIPIENT_LINE = new RegExp(
  String.raw`^\s*(?:[-*>]{1,3}\s*)?` +
    String.raw`(?:[A-Za-z][\w ().-]{0,40}:\s*(?:rfc822;\s*)?)?` +
    `[<"'(]?(${ADDRESS})[>"')]?(.*)$`,
  'i',
);

/** Labels that quote the original message's header, not a failed recipient. */
const HEADER_LABEL = anyOf(
  [
    'from',
    'to',
    'cc',
    'bcc',
    'sender',
    'reply-to',
    'return-path',
    'delivered-to',
    'x-original-to',
    'subject',
    'date',
    'message-id',
    'in-reply-to',
    'references',
    'envelope-to',
    String.raw`x-[\w-]+`,
  ],
  { before: String.raw`^\s*`, after: String.raw`\s*:` },
);

/**
 * "(expanded from <list@example.com>)" (Postfix, Sendmail), "(generated from user@...)"
 * (Exim): the address the sender used, before an alias changed it.
 */
const EXPANDED = new RegExp(`\\((?:expanded|generated) from:?\\s*<?(${ADDRESS})>?\\)`, 'i');

/** Lines longer than this (characters) are scanned only this far: no address is longer. */
const LINE_SCAN = 1000;
/** A reason keeps at most this many lines and characters. */
const REASON_LINES = 10;
const REASON_CHARS = 1000;

/** Where one format's section lies and what its recipient lines look like. */
export interface Section {
  start: number;
  end: RegExp;
  recipient: RegExp;
  /** Whether a recipient line's reason may follow on later lines (true for most formats). */
  multiline: boolean;
  /** Whether a line naming two different addresses is prose rather than a recipient. */
  single?: boolean;
  /** Also open a recipient at any line with an address and one of these words. */
  phrase?: RegExp;
  /** The domain for recipient lines that give only a local part (group 1 of recipient). */
  bareDomain?: string;
}

/** Scans report lines for recipients and their reasons. */
export function scanSection(lines: string[], section: Section): RecipientFacts[] {
  const found = new Found();
  for (let i = section.start; i < lines.length; i++) {
    const line = lines[i]!.slice(0, LINE_SCAN);
    if (i > section.start && section.end.test(line)) break;
    const opened = recipientIn(line, section);
    const expanded = EXPANDED.exec(line)?.[1];
    if (opened) {
      found.open(opened.address).reason(cleanReason(opened.rest));
      if (expanded) found.expandedFrom(expanded);
    } else if (expanded) {
      // Exim names an alias it may not disclose ("an undisclosed address") by its origin.
      if (!found.expandedFrom(expanded)) found.open(expanded);
    } else if (section.multiline && line.trim() !== '') {
      found.reason(line.trim());
    }
  }
  return found.recipients();
}

/** The recipients found so far, and the one whose reason lines are being read. */
class Found {
  private readonly byAddress = new Map<string, RecipientFacts>();
  private current: RecipientFacts | null = null;
  private reasonLines = 0;

  open(address: string): this {
    const key = address.toLowerCase();
    this.current = this.byAddress.get(key) ?? { address, action: 'failed' };
    this.byAddress.set(key, this.current);
    this.reasonLines = 0;
    return this;
  }

  /** Records the alias the current recipient came from; false when there is none. */
  expandedFrom(address: string): boolean {
    const r = this.current;
    if (!r) return false;
    if (!r.originalRecipient && address.toLowerCase() !== r.address.toLowerCase()) {
      r.originalRecipient = address;
    }
    return true;
  }

  reason(text: string): void {
    const r = this.current;
    if (!r || !text || this.reasonLines >= REASON_LINES) return;
    this.reasonLines++;
    r.diagnostic = (r.diagnostic ? `${r.diagnostic}\n${text}` : text).slice(0, REASON_CHARS);
  }

  /** The recipients, each with the enhanced status code its reason gives, if any. */
  recipients(): RecipientFacts[] {
    const out = [...this.byAddress.values()];
    for (const r of out) {
      const status = statusOf(r.diagnostic);
      if (status && status[0] !== '2') r.status = status;
    }
    return out;
  }
}

/** The recipient a line opens, if it is a recipient line. */
function recipientIn(line: string, section: Section): { address: string; rest: string } | null {
  if (section.bareDomain) {
    const m = section.recipient.exec(line);
    return m ? { address: `${m[1]}@${section.bareDomain}`, rest: m[2] ?? '' } : null;
  }
  if (!line.includes('@')) return null;
  if (section.recipient === RECIPIENT_LINE && HEADER_LABEL.test(line)) return null;
  const m = section.recipient.exec(line);
  if (m && isRecipient(m[1]!) && !(section.single && twoAddresses(line))) {
    return { address: trimAddress(m[1]!), rest: m[2] ?? '' };
  }
  if (!section.phrase?.test(line)) return null;
  const any = new RegExp(ADDRESS).exec(line);
  if (!any || !isRecipient(any[0]) || (section.single && twoAddresses(line))) return null;
  return { address: trimAddress(any[0]), rest: line.slice(any.index + any[0].length) };
}

const ADDRESSES = new RegExp(ADDRESS, 'g');

function twoAddresses(line: string): boolean {
  if (EXPANDED.test(line)) return false;
  const all = new Set([...line.matchAll(ADDRESSES)].map((m) => m[0].toLowerCase()));
  return all.size > 1;
}

/** A reason on the recipient line itself, without the separators around it. */
function cleanReason(text: string): string {
  return text
    .replace(/^[\s.:>,;-]+/, '')
    .replace(/^\(expanded from [^)]*\)\s*:?\s*/i, '')
    .trim();
}

function trimAddress(a: string): string {
  return a.replace(/[.-]+$/, '');
}

/** Addresses of report machinery are never the failed recipient. */
function isRecipient(address: string): boolean {
  return !/^(?:mailer-daemon|postmaster|mail-daemon|mail\.delivery\.system)@/i.test(address);
}
