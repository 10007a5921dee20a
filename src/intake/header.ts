/**
 * The header section of a prepared message (CRLF line ends), read once into fields for the
 * checks and the signing plan: names, unfolded values, and the problems RFC 5322 §2.2 and §3.6
 * would see in it.
 */
import addressparser from 'nodemailer/lib/addressparser';

/** One header field: its name as written and its unfolded value. */
export interface HeaderField {
  name: string;
  value: string;
}

/** What the header section says, and what is wrong with it. */
export interface MessageHeader {
  fields: HeaderField[];
  /** The first From field's address (lower-cased domain), if it has one. */
  from?: string;
  /** RFC 5322 structure problems, as sentences; empty when none. */
  problems: string[];
}

// RFC 5322 §2.2: a field name is printable US-ASCII except colon.
const FIELD = /^([\x21-\x39\x3b-\x7e]+)[ \t]*:(.*)$/s;
// RFC 5322 §2.1.1: lines MUST be no more than 998 characters, excluding the CRLF.
const MAX_LINE = 998;
// RFC 5322 §3.6: fields that may appear at most once (From exactly once; Date is added at
// intake when missing).
const AT_MOST_ONCE = [
  'date',
  'from',
  'sender',
  'reply-to',
  'to',
  'cc',
  'bcc',
  'message-id',
  'in-reply-to',
  'references',
  'subject',
];

/** Reads the header section of a message whose line ends are CRLF. */
export function readHeader(body: Buffer): MessageHeader {
  const end = body.indexOf('\r\n\r\n');
  const text = body.subarray(0, end < 0 ? body.length : end).toString('utf8');
  const problems: string[] = [];
  const fields = parseFields(text.split('\r\n'), problems);
  countProblems(fields, problems);
  // Limitation: body lines over 998 octets (RFC 5322 §2.1.1) are taken as given, not refused
  // or folded: injectors often write HTML that way and receivers take it. S/MIME signing
  // re-encodes such content; DKIM signs it as it is.
  const from = fromAddress(fields, problems);
  return { fields, ...(from ? { from } : {}), problems };
}

/** The first value of a field, by case-insensitive name. */
export function fieldValue(h: MessageHeader, name: string): string | undefined {
  const lower = name.toLowerCase();
  return h.fields.find((f) => f.name.toLowerCase() === lower)?.value;
}

function parseFields(lines: string[], problems: string[]): HeaderField[] {
  const fields: HeaderField[] = [];
  for (const [i, line] of lines.entries()) {
    if (Buffer.byteLength(line) > MAX_LINE) {
      problems.push(`header line ${i + 1} is longer than ${MAX_LINE} octets`);
    }
    const last = fields[fields.length - 1];
    if (/^[ \t]/.test(line) && last) {
      last.value += `\r\n${line}`;
      continue;
    }
    const m = FIELD.exec(line);
    if (!m) {
      problems.push(`header line ${i + 1} is not a field ("name: value"): ${clip(line)}`);
      continue;
    }
    fields.push({ name: m[1]!, value: m[2]! });
  }
  for (const f of fields) f.value = f.value.replace(/\r\n/g, '').trim();
  return fields;
}

function countProblems(fields: HeaderField[], problems: string[]): void {
  const counts = new Map<string, number>();
  for (const f of fields)
    counts.set(f.name.toLowerCase(), (counts.get(f.name.toLowerCase()) ?? 0) + 1);
  if (!counts.has('from')) problems.push('no From field (RFC 5322 §3.6.2 requires one)');
  for (const name of AT_MOST_ONCE) {
    const n = counts.get(name) ?? 0;
    if (n > 1) problems.push(`${n} ${name} fields; RFC 5322 §3.6 allows one`);
  }
}

/** The From field's first address, or a problem when it has none. */
function fromAddress(fields: HeaderField[], problems: string[]): string | undefined {
  const field = fields.find((f) => f.name.toLowerCase() === 'from');
  if (!field) return undefined;
  const parsed = addressparser(field.value, { flatten: true });
  const address = parsed.find((p) => p.address?.includes('@'))?.address;
  if (!address) {
    problems.push(`From field has no address: ${clip(field.value)}`);
    return undefined;
  }
  const at = address.lastIndexOf('@');
  return `${address.slice(0, at)}@${address.slice(at + 1).toLowerCase()}`;
}

function clip(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
