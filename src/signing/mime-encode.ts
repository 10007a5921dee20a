/**
 * The 7-bit encodings a signed entity is rewritten with: quoted-printable (RFC 2045 §6.7)
 * and base64 (§6.8) for bodies, encoded words (RFC 2047) for unstructured header text, and
 * extended parameter values (RFC 2231) for Content-Type and Content-Disposition.
 */

const CRLF = '\r\n';
// RFC 2045 §6.7 rule 5 and §6.8: encoded lines of at most 76 characters.
const MAX_ENCODED_LINE = 76;
const HEX = '0123456789ABCDEF';

/**
 * Quoted-printable for text whose line breaks are CRLF (kept as hard breaks). Besides what
 * RFC 2045 requires (8-bit octets, controls, '=', trailing blanks), a line-initial "From ",
 * '.' or '-' is encoded too: mbox delivery rewrites "From " lines and some gateways touch
 * lone dots (RFC 2049 §3, RFC 3156 §3), which would break the signature; and a line never
 * starts with "--", so it cannot be taken for a multipart boundary.
 */
export function encodeQuotedPrintable(data: Buffer): Buffer {
  const lines = data.toString('latin1').split(CRLF);
  return Buffer.from(lines.map(qpLine).join(CRLF), 'latin1');
}

function qpLine(line: string): string {
  const out: string[] = [];
  let current = '';
  for (let i = 0; i < line.length; i++) {
    const token = qpToken(line, i, current === '');
    // Keep room for the soft break '=' (rule 5).
    if (current.length + token.length > MAX_ENCODED_LINE - 1) {
      out.push(current + '=');
      current = '';
      i--;
      continue;
    }
    current += token;
  }
  return [...out, current].join(CRLF);
}

function qpToken(line: string, i: number, lineStart: boolean): string {
  const code = line.charCodeAt(i);
  const c = line[i]!;
  const last = i === line.length - 1;
  const literal = (code >= 33 && code <= 126 && c !== '=') || ((c === ' ' || c === '\t') && !last);
  if (!literal) return hexOctet(code);
  if (lineStart && (c === '.' || c === '-')) return hexOctet(code);
  if (lineStart && c === 'F' && line.startsWith('From ', i)) return hexOctet(code);
  return c;
}

function hexOctet(code: number): string {
  return '=' + HEX[code >> 4] + HEX[code & 15];
}

/** Decodes quoted-printable; malformed '=' sequences are kept as they are (RFC 2045 §6.7). */
export function decodeQuotedPrintable(data: Buffer): Buffer {
  const text = data
    .toString('latin1')
    .replace(/[ \t]+\r\n/g, CRLF)
    .replace(/=\r\n/g, '');
  const out = Buffer.alloc(text.length);
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const hex = text[i] === '=' ? text.slice(i + 1, i + 3) : '';
    if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
      out[n++] = parseInt(hex, 16);
      i += 2;
    } else {
      out[n++] = text.charCodeAt(i);
    }
  }
  return out.subarray(0, n);
}

/** Base64 in lines of 76 characters, each ending with CRLF. */
export function encodeBase64Lines(data: Buffer): Buffer {
  const text = data.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < text.length; i += MAX_ENCODED_LINE) {
    lines.push(text.slice(i, i + MAX_ENCODED_LINE) + CRLF);
  }
  return Buffer.from(lines.join(''), 'latin1');
}

/** The charset to label raw 8-bit text with: UTF-8 when it decodes as such (RFC 6532). */
export function charsetOf(data: Buffer): string {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(data);
    return 'utf-8';
  } catch {
    return 'unknown-8bit'; // RFC 1428
  }
}

/**
 * Unstructured header text as RFC 2047 encoded words ("=?utf-8?B?...?="), each at most 75
 * characters (§2) and split between characters, never inside one (§5), folded one per line.
 */
export function encodedWords(value: Buffer): string {
  const charset = charsetOf(value);
  const chars = charset === 'utf-8' ? [...value.toString('utf8')] : [...value.toString('latin1')];
  const toBytes = (s: string) => Buffer.from(s, charset === 'utf-8' ? 'utf8' : 'latin1');
  const prefix = `=?${charset}?B?`;
  // 75 minus "=?charset?B?" and "?=", in base64 characters, as whole groups of 4 (3 octets).
  const maxOctets = Math.floor((75 - prefix.length - 2) / 4) * 3;
  const words: string[] = [];
  let chunk = '';
  for (const c of chars) {
    if (chunk && toBytes(chunk + c).length > maxOctets) {
      words.push(prefix + toBytes(chunk).toString('base64') + '?=');
      chunk = '';
    }
    chunk += c;
  }
  if (chunk) words.push(prefix + toBytes(chunk).toString('base64') + '?=');
  return words.join(CRLF + ' ');
}

/**
 * One parameter as RFC 2231 extended values, percent-encoded and cut into continuations
 * (name*0*=, name*1*=, ...) of at most 60 characters, so no header line gets long.
 */
export function extendedParam(name: string, value: Buffer): string[] {
  const encoded = `${charsetOf(value)}''` + percentEncode(value);
  const pieces: string[] = [];
  for (let i = 0; i < encoded.length;) {
    let end = Math.min(encoded.length, i + 60);
    // Do not cut a %XX escape in two (RFC 2231 §4.1 continuations split whole octets).
    if (encoded[end - 1] === '%') end -= 1;
    else if (encoded[end - 2] === '%') end -= 2;
    pieces.push(encoded.slice(i, end));
    i = end;
  }
  if (pieces.length === 1) return [`${name}*=${pieces[0]}`];
  return pieces.map((p, i) => `${name}*${i}*=${p}`);
}

// RFC 2231 §7 attribute-char: ASCII printables except tspecials, '*', "'" and '%'.
function percentEncode(value: Buffer): string {
  let out = '';
  for (const octet of value) {
    const c = String.fromCharCode(octet);
    const plain = octet > 32 && octet < 127 && !/[()<>@,;:\\"/[\]?=*'%]/.test(c);
    out += plain ? c : '%' + HEX[octet >> 4] + HEX[octet & 15];
  }
  return out;
}
