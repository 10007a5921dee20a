/**
 * Header fields of a signed entity made 7-bit safe: a field with 8-bit octets (raw UTF-8,
 * as SMTPUTF8 clients write it, RFC 6532) or a line over 998 octets is rewritten; every
 * other field is kept byte for byte. Content-Type and Content-Disposition parameters become
 * RFC 2231 extended values; unstructured text becomes RFC 2047 encoded words.
 */
import { encodedWords, extendedParam } from './mime-encode.js';
import { fieldValue, splitParam, splitParams, type HeaderField } from './mime-header.js';

// RFC 5322 §2.1.1: at most 998 octets per line, CRLF excluded.
const MAX_LINE = 998;
// Above this a parameter value is cut into RFC 2231 continuations, so no line gets long.
const LONG_PARAM = 200;
const PARAMETERISED = new Set(['content-type', 'content-disposition']);
// Fields whose whole value is text, where encoded words may stand (RFC 2047 §5 (1)).
const UNSTRUCTURED = new Set(['subject', 'comments', 'content-description']);

/**
 * The fields made safe. In a MIME part ('part') every field can be; in the header of an
 * embedded message ('message') an 8-bit address or other structured field cannot be encoded
 * without changing its meaning, and null says so.
 */
export function safeFields(fields: HeaderField[], context: 'part'): HeaderField[];
export function safeFields(fields: HeaderField[], context: 'message'): HeaderField[] | null;
export function safeFields(fields: HeaderField[], context: 'part' | 'message') {
  const out: HeaderField[] = [];
  for (const field of fields) {
    if (isSafeField(field)) {
      out.push(field);
      continue;
    }
    const safe = safeField(field, context);
    if (safe === null) return null;
    // Limitation: an unsafe line that is not a header field at all is dropped from a part.
    if (safe) out.push(safe);
  }
  return out;
}

function isSafeField(field: HeaderField): boolean {
  if (/[^\x01-\x7f]/.test(field.raw)) return false;
  return field.raw.split('\r\n').every((line) => line.length <= MAX_LINE);
}

/** The field rewritten; undefined to drop it; null when it cannot be made safe. */
function safeField(
  field: HeaderField,
  context: 'part' | 'message',
): HeaderField | null | undefined {
  const lower = field.name.toLowerCase();
  if (lower === '') return context === 'part' ? undefined : null;
  if (PARAMETERISED.has(lower)) return withExtendedParams(field);
  if (context === 'part' || UNSTRUCTURED.has(lower) || lower.startsWith('x-')) {
    const words = encodedWords(Buffer.from(fieldValue(field), 'latin1'));
    return { name: field.name, raw: `${field.name}: ${words}\r\n` };
  }
  return null;
}

/** Content-Type or -Disposition, one parameter per line, unsafe values as RFC 2231. */
function withExtendedParams(field: HeaderField): HeaderField {
  const [head = '', ...pieces] = splitParams(fieldValue(field));
  const params = pieces.flatMap((piece) => {
    const param = splitParam(piece);
    const unsafe = /[^\x01-\x7f]/.test(piece) || piece.length > LONG_PARAM;
    if (!param || !unsafe || param.name.endsWith('*')) return [piece.trim()];
    return extendedParam(param.name, Buffer.from(param.value, 'latin1'));
  });
  const raw = [`${field.name}: ${head.trim()}`, ...params].join(';\r\n ') + '\r\n';
  return { name: field.name, raw };
}
