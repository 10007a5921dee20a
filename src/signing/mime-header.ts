/**
 * MIME entities as the signing code needs them: header fields kept exactly as they came
 * (folding included, so an unchanged field is re-emitted byte for byte), the body as bytes,
 * and the Content-Type parameters (RFC 2045 §5.1). Text is held as latin1 strings so that
 * each octet maps to one character and back, whatever the bytes are.
 */

/** One header field: its name and its raw text, continuation lines and final CRLF included. */
export interface HeaderField {
  /** The field name as written ('' for a line that is not a field). */
  name: string;
  raw: string;
}

/** A parsed Content-Type (or Content-Disposition) value. */
export interface ContentType {
  /** Lower-case "type/subtype" (for Content-Disposition: the disposition type). */
  mediaType: string;
  type: string;
  subtype: string;
  /** Parameter names lower-cased, values unquoted. */
  params: Map<string, string>;
}

const CRLF = '\r\n';
const FIELD_NAME = /^([\x21-\x39\x3b-\x7e]+)[ \t]*:/;

/** Splits an entity (canonical CRLF) into its header fields and its body. */
export function splitEntity(data: Buffer): { fields: HeaderField[]; body: Buffer } {
  const text = data.toString('latin1');
  if (text.startsWith(CRLF)) return { fields: [], body: data.subarray(2) };
  const end = text.indexOf('\r\n\r\n');
  const headerEnd = end < 0 ? text.length : end + 2;
  const bodyStart = end < 0 ? text.length : end + 4;
  return { fields: splitFields(text.slice(0, headerEnd)), body: data.subarray(bodyStart) };
}

function splitFields(header: string): HeaderField[] {
  const fields: HeaderField[] = [];
  const lines = header.split(/(?<=\r\n)/);
  for (const line of lines) {
    const last = fields[fields.length - 1];
    if (last && (line.startsWith(' ') || line.startsWith('\t'))) {
      last.raw += line;
    } else {
      fields.push({ name: FIELD_NAME.exec(line)?.[1] ?? '', raw: withCrlf(line) });
    }
  }
  return fields;
}

function withCrlf(line: string): string {
  return line.endsWith(CRLF) ? line : line + CRLF;
}

/** The entity again: fields, the blank line, the body. */
export function joinEntity(fields: HeaderField[], body: Buffer): Buffer {
  const header = fields.map((f) => f.raw).join('') + CRLF;
  return Buffer.concat([Buffer.from(header, 'latin1'), body]);
}

/** The field's value: unfolded (RFC 5322 §2.2.3), without the name and outer blanks. */
export function fieldValue(field: HeaderField): string {
  return field.raw
    .slice(field.raw.indexOf(':') + 1)
    .replace(/\r\n(?=[ \t])/g, '')
    .trim();
}

/** The first field of that name (case-insensitive). */
export function findField(fields: HeaderField[], name: string): HeaderField | undefined {
  const lower = name.toLowerCase();
  return fields.find((f) => f.name.toLowerCase() === lower);
}

/** The value of the first field of that name, or undefined. */
export function valueOf(fields: HeaderField[], name: string): string | undefined {
  const field = findField(fields, name);
  return field ? fieldValue(field) : undefined;
}

/** Sets a field: replaces the first of that name (dropping others) or appends it. */
export function setField(fields: HeaderField[], name: string, value: string): HeaderField[] {
  const lower = name.toLowerCase();
  const field = { name, raw: `${name}: ${value}${CRLF}` };
  const at = fields.findIndex((f) => f.name.toLowerCase() === lower);
  if (at < 0) return [...fields, field];
  return fields.flatMap((f, i) => (i === at ? [field] : f.name.toLowerCase() === lower ? [] : [f]));
}

/** Parses a Content-Type value; `fallback` when it is absent or has no type/subtype. */
export function parseContentType(value: string | undefined, fallback: string): ContentType {
  const [head, ...rest] = splitParams(stripComments(value ?? ''));
  let mediaType = (head ?? '').trim().toLowerCase();
  if (!/^[^/\s]+\/[^/\s]+$/.test(mediaType)) mediaType = fallback;
  const [type, subtype] = mediaType.split('/') as [string, string];
  return { mediaType, type, subtype, params: paramMap(rest) };
}

/** Parses a Content-Disposition value (RFC 2183): its type and parameters. */
export function parseDisposition(value: string): ContentType {
  const [head, ...rest] = splitParams(stripComments(value));
  const mediaType = (head ?? '').trim().toLowerCase();
  return { mediaType, type: mediaType, subtype: '', params: paramMap(rest) };
}

/** The ';'-separated pieces of a value, quoted strings kept whole. */
export function splitParams(value: string): string[] {
  const pieces: string[] = [];
  let piece = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (quoted && c === '\\') {
      piece += c + (value[++i] ?? '');
      continue;
    }
    if (c === '"') quoted = !quoted;
    if (c === ';' && !quoted) {
      pieces.push(piece);
      piece = '';
    } else {
      piece += c;
    }
  }
  return [...pieces, piece].filter((p) => p.trim() !== '');
}

/** One parameter "name=value" split, the value unquoted; null when there is no '='. */
export function splitParam(piece: string): { name: string; value: string } | null {
  const eq = piece.indexOf('=');
  if (eq < 0) return null;
  const name = piece.slice(0, eq).trim().toLowerCase();
  const raw = piece.slice(eq + 1).trim();
  const value = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw;
  return { name, value };
}

// Limitation: RFC 2231 continuations (name*0=, name*1=) are not joined; a boundary or charset
// written that way is not recognised, and the entity is then treated as a leaf.
function paramMap(pieces: string[]): Map<string, string> {
  const params = new Map<string, string>();
  for (const piece of pieces) {
    const p = splitParam(piece);
    if (p && !params.has(p.name)) params.set(p.name, p.value);
  }
  return params;
}

// RFC 5322 §3.2.2 comments in structured values, e.g. "text/plain (a note); charset=x".
function stripComments(value: string): string {
  let out = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '\\' && (quoted || depth > 0)) {
      if (depth === 0) out += c + (value[i + 1] ?? '');
      i++;
    } else if (c === '"' && depth === 0) {
      quoted = !quoted;
      out += c;
    } else if (c === '(' && !quoted) depth++;
    else if (c === ')' && !quoted && depth > 0) depth--;
    else if (depth === 0) out += c;
  }
  return out;
}
