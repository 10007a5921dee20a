/**
 * Making a MIME entity 7-bit safe before it is signed (RFC 8551 §3.1.3): after signing, not
 * one octet may change, yet relays may convert 8-bit data for a 7-bit hop (RFC 6152) and
 * DKIM or gateways may rewrap long lines. So every leaf part with 8-bit octets, NUL, lines
 * over 998 octets (RFC 5322 §2.1.1) or, for text, lines a mail store may rewrite, is
 * re-encoded as quoted-printable (text) or base64 (anything else); multiparts and
 * message/rfc822 parts are walked into; header fields with 8-bit octets are encoded too.
 * Entities that are already safe are kept byte for byte. The input must be canonical CRLF
 * (canonicalCrlf below).
 */
import { GridpostError } from '../errors/catalogue.js';
import {
  charsetOf,
  decodeQuotedPrintable,
  encodeBase64Lines,
  encodeQuotedPrintable,
} from './mime-encode.js';
import { safeFields } from './mime-fields.js';
import {
  joinEntity,
  parseContentType,
  setField,
  splitEntity,
  valueOf,
  type ContentType,
  type HeaderField,
} from './mime-header.js';

const CRLF = Buffer.from('\r\n');
// RFC 5322 §2.1.1: at most 998 octets per line, CRLF excluded.
const MAX_LINE = 998;
const IDENTITY = new Set(['', '7bit', '8bit', 'binary']);

/** An entity: its header fields and its body. */
export interface Entity {
  fields: HeaderField[];
  body: Buffer;
}

/** Every line end made CRLF: bare LF and bare CR alike (as intake does with stored mail). */
export function canonicalCrlf(data: Buffer): Buffer {
  const text = data.toString('latin1');
  if (!/\r(?!\n)|(?<!\r)\n/.test(text)) return data; // the usual case: intake stored it so
  return Buffer.from(text.replace(/\r\n|\r|\n/g, '\r\n'), 'latin1');
}

/**
 * The entity with every part 7-bit safe; `defaultType` is the type of an entity without
 * Content-Type (RFC 2045 §5.2; message/rfc822 inside multipart/digest, RFC 2046 §5.1.5).
 * Throws E_BAD_MESSAGE for 8-bit data it cannot re-encode (under an unknown encoding).
 */
export function sevenBitEntity(entity: Entity, defaultType = 'text/plain'): Entity {
  const fields = safeFields(entity.fields, 'part');
  const type = parseContentType(valueOf(fields, 'content-type'), defaultType);
  const encoding = (valueOf(fields, 'content-transfer-encoding') ?? '').toLowerCase();
  const { body } = entity;
  if (type.type === 'multipart' && IDENTITY.has(encoding) && type.params.get('boundary')) {
    return multipart(fields, body, type, encoding);
  }
  if (type.mediaType === 'message/rfc822' && IDENTITY.has(encoding)) {
    return embeddedMessage(fields, body);
  }
  return leaf(fields, body, type, encoding);
}

function leaf(fields: HeaderField[], body: Buffer, type: ContentType, encoding: string): Entity {
  const text = type.type === 'text';
  if (IDENTITY.has(encoding)) {
    if (isSafe(body, text)) return { fields: relabel7bit(fields, encoding), body };
    if (!text) return encoded(fields, 'base64', encodeBase64Lines(body));
    return encoded(
      withCharset(fields, type, body),
      'quoted-printable',
      encodeQuotedPrintable(body),
    );
  }
  if (isSafe(body, false)) return { fields, body };
  if (encoding === 'base64') {
    return encoded(
      fields,
      'base64',
      encodeBase64Lines(Buffer.from(body.toString('latin1'), 'base64')),
    );
  }
  if (encoding === 'quoted-printable') {
    return encoded(fields, 'quoted-printable', encodeQuotedPrintable(decodeQuotedPrintable(body)));
  }
  throw new GridpostError(
    'E_BAD_MESSAGE',
    `A part with Content-Transfer-Encoding "${encoding}" holds 8-bit data or long lines; ` +
      'it cannot be made 7-bit for S/MIME signing',
  );
}

function encoded(fields: HeaderField[], encoding: string, body: Buffer): Entity {
  return { fields: setField(fields, 'Content-Transfer-Encoding', encoding), body };
}

// A part labelled 8bit or binary whose content turned out 7-bit: say so, so no relay
// converts it on a hop without 8BITMIME (RFC 6152 §3).
function relabel7bit(fields: HeaderField[], encoding: string): HeaderField[] {
  return encoding === '8bit' || encoding === 'binary'
    ? setField(fields, 'Content-Transfer-Encoding', '7bit')
    : fields;
}

/** Raw 8-bit text gets a charset, or it would read as US-ASCII once encoded (RFC 2045 §5.2). */
function withCharset(fields: HeaderField[], type: ContentType, body: Buffer): HeaderField[] {
  if (type.params.has('charset') || !body.some((o) => o > 127)) return fields;
  const charset = charsetOf(body);
  const value = valueOf(fields, 'content-type');
  const typed = value !== undefined && /^[^;/\s]+\/[^;/\s]+/.test(value) ? value : 'text/plain';
  return setField(fields, 'Content-Type', `${typed}; charset=${charset}`);
}

/**
 * Whether a body can travel and be stored untouched: 7-bit, no NUL, no line over 998
 * octets; for text also no trailing blanks (stripped by some gateways) and no line that
 * starts with "From " (rewritten by mbox stores).
 */
function isSafe(body: Buffer, text: boolean): boolean {
  let lineStart = 0;
  for (let i = 0; i < body.length; i++) {
    const o = body[i]!;
    if (o > 127 || o === 0) return false;
    if (o !== 10) continue;
    if (i - 1 - lineStart > MAX_LINE) return false;
    if (text && !isSafeTextLine(body, lineStart, i - 1)) return false;
    lineStart = i + 1;
  }
  if (body.length - lineStart > MAX_LINE) return false;
  return !text || isSafeTextLine(body, lineStart, body.length);
}

// The line is body[start, end), end at its CR (or the end of the body).
function isSafeTextLine(body: Buffer, start: number, end: number): boolean {
  const lastOctet = body[end - 1];
  if (end > start && (lastOctet === 32 || lastOctet === 9)) return false;
  return !(end - start >= 5 && body.toString('latin1', start, start + 5) === 'From ');
}

/** Each part made safe, then the multipart written again with the same boundary. */
function multipart(
  fields: HeaderField[],
  body: Buffer,
  type: ContentType,
  encoding: string,
): Entity {
  const boundary = type.params.get('boundary')!;
  const split = splitMultipart(body, boundary);
  // Limitation: a multipart whose boundary never appears is kept whole as one opaque leaf.
  if (!split) return leaf(fields, body, type, encoding);
  const childType = type.subtype === 'digest' ? 'message/rfc822' : 'text/plain';
  const parts = split.parts.map((p) => {
    const safe = sevenBitEntity(splitEntity(p), childType);
    return joinEntity(safe.fields, safe.body);
  });
  return {
    fields: relabel7bit(fields, encoding),
    body: joinMultipart(boundary, parts, keepIfSafe(split.preamble), keepIfSafe(split.epilogue)),
  };
}

// Preamble and epilogue are ignored by readers (RFC 2046 §5.1.1); unsafe ones are dropped.
function keepIfSafe(text: Buffer | null): Buffer | null {
  return text && isSafe(text, false) ? text : null;
}

interface MultipartPieces {
  preamble: Buffer | null;
  parts: Buffer[];
  epilogue: Buffer | null;
}

/**
 * Cuts a multipart body at its delimiter lines (RFC 2046 §5.1.1): "--boundary", optional
 * blanks; the close delimiter adds "--". The CRLF before a delimiter belongs to it. A
 * missing close delimiter (a truncated message) ends the last part at the end of the body.
 * Null when the boundary never appears.
 */
export function splitMultipart(body: Buffer, boundary: string): MultipartPieces | null {
  const dash = `--${boundary}`;
  const text = body.toString('latin1');
  const pieces: MultipartPieces = { preamble: null, parts: [], epilogue: null };
  let partStart = -1;
  for (let at = 0; at <= text.length;) {
    const eol = text.indexOf('\r\n', at);
    const end = eol < 0 ? text.length : eol;
    const kind = delimiterKind(text, at, end, dash);
    if (kind) {
      const before = Math.max(at - 2, 0); // the CRLF that belongs to the delimiter
      if (partStart < 0) pieces.preamble = at > 0 ? body.subarray(0, before) : null;
      else pieces.parts.push(body.subarray(partStart, Math.max(before, partStart)));
      partStart = eol < 0 ? text.length : eol + 2;
      if (kind === 'close') {
        pieces.epilogue = eol < 0 ? null : body.subarray(partStart);
        return pieces;
      }
    }
    if (eol < 0) break;
    at = eol + 2;
  }
  if (partStart < 0) return null;
  pieces.parts.push(body.subarray(partStart));
  return pieces;
}

function delimiterKind(text: string, start: number, end: number, dash: string) {
  if (!text.startsWith(dash, start)) return null;
  const rest = text.slice(start + dash.length, end);
  if (/^[ \t]*$/.test(rest)) return 'part';
  if (/^--[ \t]*$/.test(rest)) return 'close';
  return null;
}

/** A multipart body from its pieces, in the RFC 2046 §5.1.1 grammar, blanks left out. */
export function joinMultipart(
  boundary: string,
  parts: Buffer[],
  preamble: Buffer | null = null,
  epilogue: Buffer | null = null,
): Buffer {
  const chunks: Buffer[] = preamble ? [preamble, CRLF] : [];
  parts.forEach((part, i) => {
    chunks.push(Buffer.from(`${i === 0 ? '' : '\r\n'}--${boundary}\r\n`, 'latin1'), part);
  });
  chunks.push(Buffer.from(`\r\n--${boundary}--`, 'latin1'));
  if (epilogue) chunks.push(CRLF, epilogue);
  else chunks.push(CRLF);
  return Buffer.concat(chunks);
}

/**
 * message/rfc822 may not be base64 or quoted-printable itself (RFC 2046 §5.2.1), so the
 * embedded message is made safe inside: its header fields encoded, its body walked. When a
 * header field of it cannot be encoded (8-bit addresses), it becomes message/global, which
 * may be base64-encoded (RFC 6532 §3.7).
 */
function embeddedMessage(fields: HeaderField[], body: Buffer): Entity {
  const inner = splitEntity(body);
  const innerFields = safeFields(inner.fields, 'message');
  if (!innerFields) {
    const global = setField(fields, 'Content-Type', 'message/global');
    return encoded(global, 'base64', encodeBase64Lines(body));
  }
  const safe = sevenBitEntity({ fields: innerFields, body: inner.body });
  const encoding = (valueOf(fields, 'content-transfer-encoding') ?? '').toLowerCase();
  return { fields: relabel7bit(fields, encoding), body: joinEntity(safe.fields, safe.body) };
}
