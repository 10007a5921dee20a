/**
 * The DKIM-Signature header field (RFC 6376 §3.5): which header fields it signs (h=, chosen
 * bottom-up as §5.4.2 says), its tags, and its folding into lines of at most 78 characters.
 */
import type { HeaderField } from './dkim-canon.js';

/**
 * Header fields listed in h= once more than the message has them ("over-signed"), so a copy
 * added in transit breaks the signature instead of being shown beside the signed one: a
 * verifier takes instances bottom-up (RFC 6376 §5.4.2), so without this a From added above
 * ours would pass unnoticed, and many readers display the topmost. These are the fields that
 * RFC 5322 §3.6 and RFC 2045 allow only once and whose second copy would change what the
 * reader sees, where replies go or how the body is decoded; plus List-Unsubscribe and
 * List-Unsubscribe-Post, whose added copy would redirect one-click unsubscriptions (RFC 8058
 * §4 asks that both be signed). List-Id and Feedback-ID are signed but not over-signed: a
 * mailing list or relaying service may add its own, and that changes nothing the reader
 * trusts.
 */
export const DEFAULT_OVERSIGNED_HEADERS: readonly string[] = [
  'from',
  'sender',
  'reply-to',
  'subject',
  'date',
  'message-id',
  'to',
  'cc',
  'in-reply-to',
  'references',
  'mime-version',
  'content-type',
  'content-transfer-encoding',
  'list-unsubscribe',
  'list-unsubscribe-post',
];

/**
 * Header fields signed by default, each present instance of them. The reader sees or acts on
 * these (originator, recipients, subject, threading, MIME structure, list and feedback
 * fields); trace fields (Received, Return-Path) are left out because relays add them.
 */
export const DEFAULT_SIGNED_HEADERS: readonly string[] = [
  ...DEFAULT_OVERSIGNED_HEADERS,
  'list-id',
  'feedback-id',
];

// RFC 5322 §2.1.1: lines SHOULD be at most 78 characters, CRLF excluded.
const MAX_LINE = 78;
// Fewer characters than this left on a line and b= starts on the next one, so the signature
// is not cut into a sliver.
const MIN_B_ROOM = 16;
const FIELD_NAME = 'DKIM-Signature:';

/**
 * The h= list: every name of `names` that the message has, once per instance, and the
 * over-signed ones once more (also when absent, which forbids adding one).
 */
export function headerList(
  fields: readonly HeaderField[],
  names: readonly string[],
  oversigned: ReadonlySet<string>,
): string[] {
  const counts = new Map<string, number>();
  for (const f of fields) counts.set(f.name, (counts.get(f.name) ?? 0) + 1);
  const list: string[] = [];
  for (const name of names) {
    const copies = (counts.get(name) ?? 0) + (oversigned.has(name) ? 1 : 0);
    for (let i = 0; i < copies; i++) list.push(name);
  }
  return list;
}

/**
 * The fields that h= selects, in h= order: for each name the last instance not yet taken,
 * then the one above it (RFC 6376 §5.4.2); a name listed more often than present selects
 * nothing, which signs the absence.
 */
export function selectFields(fields: readonly HeaderField[], list: readonly string[]) {
  const byName = new Map<string, HeaderField[]>();
  for (const f of fields) {
    const same = byName.get(f.name);
    if (same) same.push(f);
    else byName.set(f.name, [f]);
  }
  const selected: HeaderField[] = [];
  for (const name of list) {
    const found = byName.get(name)?.pop();
    if (found) selected.push(found);
  }
  return selected;
}

/** One tag of the field, in order; `split` says how its value may be folded. */
export interface Tag {
  name: string;
  value: string;
  /** 'list': only after a colon (h=); 'anywhere': base64 (bh=); 'never': kept on one line. */
  split: 'never' | 'list' | 'anywhere';
}

/**
 * The DKIM-Signature field with an empty b= at the end, folded: the exact text that is signed
 * (RFC 6376 §3.7) and, with the signature appended by withSignature, the text that is sent.
 */
export function foldedTemplate(tags: readonly Tag[]): string {
  const lines = new LineFolder();
  for (const tag of tags) lines.addTag(tag);
  lines.addWord('b=', MIN_B_ROOM);
  return lines.text();
}

/**
 * The template with the base64 signature as b= value, folded at 78 characters; the folding
 * whitespace inside b= is ignored by verifiers (RFC 6376 §3.5, base64string).
 */
export function withSignature(template: string, signatureBase64: string): string {
  const lastLine = template.length - template.lastIndexOf('\n') - 1;
  let room = Math.max(MAX_LINE - lastLine, 1);
  const parts: string[] = [template];
  for (let at = 0; at < signatureBase64.length;) {
    if (at > 0) parts.push('\r\n\t');
    parts.push(signatureBase64.slice(at, at + room));
    at += room;
    room = MAX_LINE - 1; // after the tab
  }
  return parts.join('');
}

/** Greedy line filling for the field's tags. */
class LineFolder {
  private readonly lines: string[] = [];
  private current = FIELD_NAME;

  /** Adds "name=value;": after a space if it fits, else folded where its kind allows. */
  addTag(tag: Tag): void {
    const text = `${tag.name}=${tag.value};`;
    if (this.fits(' ' + text)) {
      this.current += ' ' + text;
    } else if (tag.split === 'list') {
      const names = text.split(/(?<=:)/); // "h=from:", "to:", ..., "subject;"
      this.addWord(names[0]!);
      for (const name of names.slice(1)) this.append(name);
    } else if (tag.split === 'anywhere' && text.length + 1 > MAX_LINE) {
      for (const piece of slices(text, MAX_LINE - 1)) this.newLine(piece);
    } else {
      this.newLine(text);
    }
  }

  /** Adds a word after a space, on a new line when fewer than `room` characters would fit. */
  addWord(word: string, room = 0): void {
    if (this.fits(' ' + word) && MAX_LINE - this.current.length - 1 >= room) {
      this.current += ' ' + word;
    } else {
      this.newLine(word);
    }
  }

  /** Adds text with no space before it (inside a value), on a new line if it does not fit. */
  private append(text: string): void {
    if (this.fits(text)) this.current += text;
    else this.newLine(text);
  }

  private fits(text: string): boolean {
    return this.current.length + text.length <= MAX_LINE;
  }

  private newLine(text: string): void {
    this.lines.push(this.current);
    this.current = '\t' + text;
  }

  text(): string {
    return [...this.lines, this.current].join('\r\n');
  }
}

/** Consecutive pieces of text, each `width` characters long but the last. */
function slices(text: string, width: number): string[] {
  const out: string[] = [];
  for (let at = 0; at < text.length; at += width) out.push(text.slice(at, at + width));
  return out;
}

/**
 * dkim-quoted-printable (RFC 6376 §2.11) of an identity: bytes outside the printable ASCII
 * range, ';' and '=' become =XX, so a UTF-8 local part survives in i=.
 */
export function dkimQuotedPrintable(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const plain = byte >= 0x21 && byte <= 0x7e && byte !== 0x3b && byte !== 0x3d;
    out += plain
      ? String.fromCharCode(byte)
      : '=' + byte.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}
