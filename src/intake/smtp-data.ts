// The DATA phase (RFC 5321 §4.1.1.4, §4.5.2): finds the end of the message, undoes
// dot-stuffing and bounds memory, searching with Buffer.indexOf rather than byte by byte.

const CRLF = Buffer.from('\r\n');
const CRLF_DOT = Buffer.from('\r\n.');
const EMPTY = Buffer.alloc(0);
const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

/**
 * Collects one message. Only CRLF "." CRLF ends it: "\n.\n", "\r\n.\n", "\n.\r\n" or "\r.\r\n"
 * stay in the content (SMTP smuggling defence), and only a doubled dot at the start of a line is
 * undone. A lone leading dot before other text is kept: RFC 5321 §4.5.2 would delete it, but
 * keeping it leaves "\r\n.\n" intact for the caller's line-end normalisation.
 */
export class DataReader {
  private parts: Buffer[] = [];
  private kept = 0;
  private seen = 0;
  // The end of the previous chunk when it may begin "\r\n.\r\n" or "\r\n.." (at most 4 bytes).
  // It starts as the CRLF that ended the DATA command, so a first line "." ends the message and a
  // first line ".." loses a dot; those 2 bytes are not content (skip).
  private carry: Buffer = CRLF;
  private skip = CRLF.length;

  /** maxBytes: content beyond it is counted but not kept. */
  constructor(private readonly maxBytes: number) {}

  /** Content bytes received so far, after dot-unstuffing. */
  get size(): number {
    return this.seen;
  }

  /** True when the content went over maxBytes and was dropped. */
  get overflowed(): boolean {
    return this.seen > this.maxBytes;
  }

  /** The content, without the final CRLF.CRLF; call once push() found the end. */
  content(): Buffer {
    return Buffer.concat(this.parts, this.kept);
  }

  /** Consumes a chunk; returns the offset in it just past the end of data, or -1 for more. */
  push(chunk: Buffer): number {
    const carried = this.carry.length;
    const buf = carried > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    this.carry = EMPTY;
    const end = this.scan(buf);
    return end < 0 ? -1 : end - carried;
  }

  /** Keeps buf's content up to the end of data; returns the end's offset in buf, or -1. */
  private scan(buf: Buffer): number {
    let from = 0;
    let at = buf.indexOf(CRLF_DOT);
    while (at >= 0) {
      const next = at + CRLF_DOT.length;
      const b1 = buf[next];
      if (b1 === undefined || (b1 === CR && next + 1 >= buf.length)) {
        return this.hold(buf, from, at);
      }
      if (b1 === CR && buf[next + 1] === LF) {
        this.keep(buf, from, at);
        return next + 2;
      }
      if (b1 === DOT) {
        this.keep(buf, from, next);
        from = next + 1;
      }
      at = buf.indexOf(CRLF_DOT, next);
    }
    return this.hold(buf, from, partialStart(buf, from));
  }

  /** Keeps buf[from, until) and carries buf[until, end) over to the next chunk; returns -1. */
  private hold(buf: Buffer, from: number, until: number): number {
    this.keep(buf, from, until);
    this.carry = Buffer.from(buf.subarray(until));
    return -1;
  }

  /** Adds buf[start, end) to the content, unless over the limit. */
  private keep(buf: Buffer, start: number, end: number): void {
    if (this.skip > 0) {
      const skipped = Math.min(this.skip, end - start);
      this.skip -= skipped;
      start += skipped;
    }
    if (end <= start) return;
    this.seen += end - start;
    if (this.overflowed) {
      this.parts = [];
      this.kept = 0;
      return;
    }
    this.parts.push(buf.subarray(start, end));
    this.kept += end - start;
  }
}

/** Where a possible "\r\n" prefix of the end-of-data sequence starts at the end of buf. */
function partialStart(buf: Buffer, from: number): number {
  const n = buf.length;
  if (n - 2 >= from && buf[n - 2] === CR && buf[n - 1] === LF) return n - 2;
  if (n - 1 >= from && buf[n - 1] === CR) return n - 1;
  return n;
}
