// Bytes received from a client and not yet processed, handed out as command lines or raw chunks.

const CR = 0x0d;
const LF = 0x0a;

/** What takeLine returns for a line over the limit (the line itself is dropped). */
export const LINE_TOO_LONG = Symbol('line too long');

/** The unprocessed input of one session, in arrival order. */
export class InputBuffer {
  private chunks: Buffer[] = [];
  private bytes = 0;
  // Inside a line that went over the limit and was already answered: drop through its LF.
  private discarding = false;

  /** Bytes held. */
  get size(): number {
    return this.bytes;
  }

  /** Appends received bytes. */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.bytes += chunk.length;
  }

  /** Puts bytes back in front (what followed the end of DATA). */
  unshift(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.unshift(chunk);
    this.bytes += chunk.length;
  }

  /** Drops everything held. */
  clear(): void {
    this.chunks = [];
    this.bytes = 0;
  }

  /** Everything held as one buffer (copied only when it arrived in several chunks). */
  takeAll(): Buffer | undefined {
    const all = this.merged();
    this.clear();
    return all;
  }

  /**
   * The next line without its CRLF (a bare LF ends it too), undefined until one is complete, or
   * LINE_TOO_LONG once for a line of more than maxBytes octets counting its line end.
   */
  takeLine(maxBytes: number): string | typeof LINE_TOO_LONG | undefined {
    for (;;) {
      const buf = this.lineBuffer();
      if (buf === undefined) return undefined;
      const lf = buf.indexOf(LF);
      if (this.discarding) {
        if (lf < 0) {
          this.clear();
          return undefined;
        }
        this.discarding = false;
        this.consume(buf, lf + 1);
        continue;
      }
      if (lf < 0 && buf.length < maxBytes) return undefined;
      return this.cutLine(buf, lf, maxBytes);
    }
  }

  /** Takes the line ending at lf out of buf (the first held buffer). */
  private cutLine(buf: Buffer, lf: number, maxBytes: number): string | typeof LINE_TOO_LONG {
    if (lf < 0 || lf + 1 > maxBytes) {
      // No LF yet only reaches here past maxBytes: answer now, drop the rest as it comes.
      this.discarding = lf < 0;
      this.consume(buf, lf < 0 ? buf.length : lf + 1);
      return LINE_TOO_LONG;
    }
    const end = lf > 0 && buf[lf - 1] === CR ? lf - 1 : lf;
    const line = buf.toString('utf8', 0, end);
    this.consume(buf, lf + 1);
    return line;
  }

  /** The first held buffer, merged with the rest when it holds no LF. */
  private lineBuffer(): Buffer | undefined {
    const first = this.chunks[0];
    if (first === undefined || this.chunks.length === 1 || first.includes(LF)) return first;
    return this.merged();
  }

  /** All chunks as one, kept as the only chunk. */
  private merged(): Buffer | undefined {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.bytes)];
    return this.chunks[0];
  }

  /** Drops n bytes from the front of buf, the first held buffer. */
  private consume(buf: Buffer, n: number): void {
    this.bytes -= n;
    if (n >= buf.length) this.chunks.shift();
    else this.chunks[0] = buf.subarray(n);
  }
}
