/**
 * An inbound message as the report parsers need it: its header fields, the report's
 * human-readable text, and the machine-readable parts a report carries. MIME is decoded by
 * postal-mime; a message it refuses (too deep, headers too large) is read as plain text.
 */
import PostalMime, { type Email } from 'postal-mime';

/**
 * Input beyond this is ignored (bytes): no real report comes near it, and it bounds the work
 * a hostile message can cause. A report cut here loses only what follows, usually the
 * returned original message.
 */
export const MAX_INPUT = 10 * 1024 * 1024;

/** A decoded MIME part that a report may carry as its machine-readable half. */
export interface ReportPart {
  /** Lower-case MIME type, e.g. "message/delivery-status". */
  type: string;
  /** Decoded content, line ends normalised to "\n". */
  content: string;
}

/** The parts of an inbound message the analysis reads. */
export interface InboundMessage {
  /** Header fields of the top level, names lower-cased, values unfolded, in order. */
  headers: Array<[name: string, value: string]>;
  /** The report-type parameter of a multipart/report (or of a mislabelled container). */
  reportType?: string;
  from?: string;
  subject?: string;
  /** The human-readable text: text/plain parts, else the HTML as text. */
  text: string;
  /** Every part that is not the message text (message/*, text/rfc822-headers, ...). */
  parts: ReportPart[];
}

/** Decodes raw message bytes; never throws. */
export async function readMessage(raw: Buffer | string): Promise<InboundMessage> {
  const input = typeof raw === 'string' ? raw.slice(0, MAX_INPUT) : raw.subarray(0, MAX_INPUT);
  try {
    const email = await PostalMime.parse(input, {
      attachmentEncoding: 'utf8',
      forceRfc822Attachments: true,
    });
    return fromEmail(email);
  } catch {
    return plainMessage(typeof input === 'string' ? input : input.toString('latin1'));
  }
}

function fromEmail(email: Email): InboundMessage {
  const headers = email.headers.map((h): [string, string] => [h.key, h.value]);
  const contentType = headers.find(([n]) => n === 'content-type')?.[1] ?? '';
  const from = email.from?.address ?? email.from?.name;
  return {
    headers,
    reportType: param(contentType, 'report-type')?.toLowerCase(),
    from: from || undefined,
    subject: email.subject,
    text: email.text ?? (email.html ? htmlToText(email.html) : ''),
    parts: email.attachments.map((a) => ({
      type: a.mimeType,
      content: typeof a.content === 'string' ? a.content : new TextDecoder().decode(a.content),
    })),
  };
}

/**
 * A message MIME decoding refused, read as header lines and a body of text: enough for the
 * non-standard formats, not for a DSN (its parts are not separated).
 */
function plainMessage(raw: string): InboundMessage {
  const text = raw.replace(/\r\n?/g, '\n');
  const end = text.indexOf('\n\n');
  const head = end < 0 ? text : text.slice(0, end);
  const headers: Array<[string, string]> = [];
  // Limitation: header fields are unfolded only to 64 KiB each; longer ones are cut.
  for (const m of head.slice(0, 1024 * 1024).matchAll(/^([!-9;-~]+):[ \t]*(.{0,65536})$/gm)) {
    headers.push([m[1]!.toLowerCase(), m[2]!.trim()]);
  }
  const value = (name: string) => headers.find(([n]) => n === name)?.[1];
  return {
    headers,
    from: value('from'),
    subject: value('subject'),
    text: end < 0 ? '' : text.slice(end + 2),
    parts: [],
  };
}

/** A parameter of a structured header value (RFC 2045 §5.1), unquoted. */
export function param(value: string, name: string): string | undefined {
  const re = new RegExp(`;\\s*${name}\\s*=\\s*(?:"([^"]*)"|([^;\\s]+))`, 'i');
  const m = re.exec(value);
  return m ? (m[1] ?? m[2]) : undefined;
}

const ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: ' ',
};

/** HTML as plain lines: block ends become line ends, tags go, common entities are decoded. */
export function htmlToText(html: string): string {
  return html
    .replace(/<(?:style|script)\b[^>]*>[^]*?<\/(?:style|script)>/gi, '')
    .replace(/<(?:br|\/p|\/div|\/tr|\/li|\/h\d|\/table)\b[^>]*>/gi, '\n')
    .replace(/<[^>]*>/g, '')
    .replace(/&(#\d{1,7}|#x[0-9a-f]{1,6}|[a-z]{2,6});/gi, (all, e: string) => entity(all, e));
}

function entity(all: string, e: string): string {
  if (e[0] !== '#') return ENTITIES[e.toLowerCase()] ?? all;
  const n = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : Number(e.slice(1));
  return n > 0 && n <= 0x10ffff ? String.fromCodePoint(n) : all;
}

/** The first value of a header field of the message. */
export function header(msg: InboundMessage, name: string): string | undefined {
  return msg.headers.find(([n]) => n === name)?.[1];
}
