// Wire-level pieces of the test receiver: reply formatting and the DATA body collector.

const CRLF = Buffer.from('\r\n');
const CRLF_DOT = Buffer.from('\r\n.');
const END_OF_DATA = Buffer.from('\r\n.\r\n');
const DOT = 0x2e;

/** The three-digit code of a reply text, or 0 when it does not start with one. */
export function replyCode(reply: string): number {
  const code = Number(reply.slice(0, 3));
  return Number.isInteger(code) && code >= 100 && code <= 599 ? code : 0;
}

/**
 * Formats a reply for the wire. Lines are separated by "\n" in the input; every line but the
 * last gets "code-", the last "code " (RFC 5321 §4.2.1). Continuation lines may omit the code.
 */
export function formatReply(reply: string): string {
  if (!reply.includes('\n')) return `${reply}\r\n`;
  const lines = reply.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  const code = reply.slice(0, 3);
  const last = lines.length - 1;
  return lines.map((l, i) => `${code}${i === last ? ' ' : '-'}${stripCode(l, code)}\r\n`).join('');
}

/** A reply line without its leading "250 " or "250-". */
function stripCode(line: string, code: string): string {
  if (!line.startsWith(code)) return line;
  const sep = line[3];
  return sep === ' ' || sep === '-' || sep === undefined ? line.slice(4) : line;
}

/** Removes the extra leading dot of every dot-stuffed line (RFC 5321 §4.5.2). */
export function unstuffDots(body: Buffer): Buffer {
  let start = body[0] === DOT ? 1 : 0;
  let hit = body.indexOf(CRLF_DOT, start);
  if (start === 0 && hit < 0) return body;
  const parts: Buffer[] = [];
  while (hit >= 0) {
    parts.push(body.subarray(start, hit + 2));
    start = hit + 3;
    hit = body.indexOf(CRLF_DOT, start);
  }
  parts.push(body.subarray(start));
  return Buffer.concat(parts);
}

/**
 * Collects a DATA body until CRLF.CRLF, searching with indexOf rather than byte by byte.
 * Memory is bounded: past maxBytes the chunks are dropped and only the end is looked for.
 */
export class DataCollector {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  // The last (up to 4) bytes seen, to find a terminator split across chunks. It starts with the
  // CRLF that ended the DATA command, so a body of just ".\r\n" is an empty message.
  private tail: Buffer = CRLF;

  constructor(private readonly maxBytes: number) {}

  /** Bytes of the body stream seen so far, terminator included once found. */
  get received(): number {
    return this.size;
  }

  /** True when the body went over maxBytes and was not kept. */
  get overflowed(): boolean {
    return this.size > this.maxBytes;
  }

  /** Consumes a chunk; returns the offset just past the terminator, or -1 if more is needed. */
  push(chunk: Buffer): number {
    const end = this.findEnd(chunk);
    const part = end < 0 ? chunk : chunk.subarray(0, end);
    this.size += part.length;
    if (!this.overflowed) this.chunks.push(part);
    this.tail = lastBytes(this.tail, part, END_OF_DATA.length - 1);
    return end;
  }

  /** The body without the terminating ".CRLF", dot-unstuffed; call once push found the end. */
  body(): Buffer {
    const withTerminator = Buffer.concat(this.chunks, this.size);
    // The terminator is CRLF.CRLF; its first CRLF ends the last line, so only ".CRLF" goes.
    return unstuffDots(withTerminator.subarray(0, Math.max(0, this.size - 3)));
  }

  /** Offset in chunk just past the first CRLF.CRLF, looking across the previous chunk too. */
  private findEnd(chunk: Buffer): number {
    const seam = Buffer.concat([this.tail, chunk.subarray(0, END_OF_DATA.length - 1)]);
    const atSeam = seam.indexOf(END_OF_DATA);
    if (atSeam >= 0) return atSeam + END_OF_DATA.length - this.tail.length;
    const inside = chunk.indexOf(END_OF_DATA);
    return inside < 0 ? -1 : inside + END_OF_DATA.length;
  }
}

/** The last n bytes of prev followed by next. */
function lastBytes(prev: Buffer, next: Buffer, n: number): Buffer {
  if (next.length >= n) return next.subarray(next.length - n);
  return Buffer.concat([prev, next]).subarray(-n);
}
