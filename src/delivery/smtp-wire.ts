/**
 * The SMTP client's connection: an incremental reply parser (RFC 5321 §4.2) and the Wire, the
 * socket plus that parser, which hands out one reply per read and turns every timeout,
 * connection loss, abort and malformed reply into a WireFault value instead of an exception.
 */
import type { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { replyFromLines, type SmtpReply } from './reply.js';

// Limits on what a server may send us. RFC 5321 §4.5.3.1.5 caps a reply line at 512 octets;
// real servers exceed it, so we allow 16 times that. The caps bound memory against a hostile
// or broken peer, not normal traffic.
const MAX_LINE_BYTES = 8192;
// Lines in one multi-line reply: an EHLO reply has a few dozen at most.
const MAX_REPLY_LINES = 500;

const REPLY_LINE = /^([2-5]\d\d)([ -]|$)/;

/** Incremental parser of SMTP replies (RFC 5321 §4.2) from TCP chunks split anywhere. */
export class ReplyParser {
  #rest: Buffer | null = null;
  #lines: string[] = [];

  /** True while a partial line or a partial multi-line reply is held. */
  get buffered(): boolean {
    return this.#rest !== null || this.#lines.length > 0;
  }

  /** Adds one chunk; completed replies go to out. Returns an error text on malformed input. */
  feed(chunk: Buffer, out: SmtpReply[]): string | null {
    const buf = this.#rest ? Buffer.concat([this.#rest, chunk]) : chunk;
    this.#rest = null;
    let start = 0;
    for (let lf = buf.indexOf(0x0a); lf !== -1; lf = buf.indexOf(0x0a, start)) {
      const end = lf > start && buf[lf - 1] === 0x0d ? lf - 1 : lf;
      if (end - start > MAX_LINE_BYTES) return `reply line longer than ${MAX_LINE_BYTES} bytes`;
      const bad = this.#line(buf.toString('utf8', start, end), out);
      if (bad) return bad;
      start = lf + 1;
    }
    if (buf.length - start > MAX_LINE_BYTES) {
      return `reply line longer than ${MAX_LINE_BYTES} bytes`;
    }
    // Copy the tail so a large chunk is not kept alive by a few bytes of it.
    if (start < buf.length) this.#rest = Buffer.from(buf.subarray(start));
    return null;
  }

  #line(line: string, out: SmtpReply[]): string | null {
    const m = REPLY_LINE.exec(line);
    if (!m) return `malformed reply line ${JSON.stringify(line.slice(0, 80))}`;
    if (this.#lines.length >= MAX_REPLY_LINES) return `reply longer than ${MAX_REPLY_LINES} lines`;
    this.#lines.push(line.slice(4));
    if (m[2] === '-') return null;
    out.push(replyFromLines(Number(m[1]), this.#lines));
    this.#lines = [];
    return null;
  }
}

/** Why the connection failed under a read, a write or a wait. */
export interface WireFault {
  cause: 'timeout' | 'closed' | 'socket' | 'protocol' | 'aborted';
  message: string;
}

/** True when a read or wait ended in a fault rather than a reply. */
export function isFault(r: SmtpReply | WireFault): r is WireFault {
  return 'cause' in r;
}

/**
 * The socket plus the reply parser. At most one read or wait is outstanding (the protocol is
 * sequential). Any fault kills the wire for good: after a timeout the reply stream can no
 * longer be matched to commands. Replies received before a fault are still handed out first.
 */
export class Wire {
  #socket: net.Socket;
  #fault: WireFault | null = null;
  #reader: ((r: SmtpReply | WireFault) => void) | null = null;
  #waiter: ((f: WireFault | null) => void) | null = null;
  #timer: NodeJS.Timeout | undefined;
  readonly #parser = new ReplyParser();
  readonly #replies: SmtpReply[] = [];
  readonly #signal: AbortSignal | undefined;

  constructor(socket: net.Socket, signal: AbortSignal | undefined) {
    this.#socket = socket;
    this.#signal = signal;
    this.#listen(socket);
    if (signal?.aborted) this.#abort();
    else signal?.addEventListener('abort', this.#abort, { once: true });
  }

  get socket(): net.Socket {
    return this.#socket;
  }

  get alive(): boolean {
    return this.#fault === null;
  }

  /** Takes a reply that arrived while nothing was waiting for one. */
  takeUnsolicited(): SmtpReply | undefined {
    return this.#replies.shift();
  }

  write(data: string | Buffer): boolean {
    return this.#fault === null && this.#socket.write(data);
  }

  /** The next reply, or the fault that ended the wire; ms bounds the wait. */
  read(ms: number): Promise<SmtpReply | WireFault> {
    const queued = this.#replies.shift();
    if (queued) return Promise.resolve(queued);
    if (this.#fault) return Promise.resolve(this.#fault);
    return new Promise((resolve) => {
      this.#reader = resolve;
      this.#timer = setTimeout(this.#timeout, ms, ms);
    });
  }

  /** Waits for an event of emitter (connect, drain, secureConnect); null when it came. */
  waitFor(emitter: EventEmitter, event: string, ms: number): Promise<WireFault | null> {
    if (this.#fault) return Promise.resolve(this.#fault);
    return new Promise((resolve) => {
      const done = (fault: WireFault | null): void => {
        clearTimeout(this.#timer);
        emitter.off(event, arrived);
        this.#waiter = null;
        resolve(fault);
      };
      const arrived = (): void => done(null);
      emitter.once(event, arrived);
      this.#waiter = done;
      this.#timer = setTimeout(this.#timeout, ms, ms);
    });
  }

  drain(ms: number): Promise<WireFault | null> {
    return this.waitFor(this.#socket, 'drain', ms);
  }

  /** Replaces the plain socket by a TLS one over it (RFC 3207); no certificate check. */
  startTls(servername: string | undefined, ms: number): Promise<WireFault | null> {
    // Anything the server sent after its 220 was sent before TLS and may be an injection
    // attempt (the mirror of CVE-2011-0411): refuse rather than read it as a TLS reply.
    if (this.#replies.length > 0 || this.#parser.buffered) {
      return Promise.resolve(
        this.#die({ cause: 'protocol', message: 'data after STARTTLS reply' }),
      );
    }
    const plain = this.#socket;
    plain.off('data', this.#receive);
    plain.off('close', this.#close);
    // Limitation: Node's TLS defaults apply (TLS 1.2 or later), so a server that only speaks
    // TLS 1.0/1.1 fails the session at 'starttls' instead of getting mail in plaintext.
    const secure = tls.connect({ socket: plain, servername, rejectUnauthorized: false });
    this.#socket = secure;
    this.#listen(secure);
    return this.waitFor(secure, 'secureConnect', ms);
  }

  get tlsVersion(): string | undefined {
    const s = this.#socket;
    return s instanceof tls.TLSSocket ? (s.getProtocol() ?? undefined) : undefined;
  }

  /** Sends QUIT and waits for its reply at most ms, then destroys; never throws. */
  async quit(ms: number): Promise<void> {
    if (this.alive) {
      this.write('QUIT\r\n');
      await this.read(ms);
    }
    this.destroy();
  }

  destroy(): void {
    this.#die({ cause: 'closed', message: 'closed locally' });
  }

  #listen(socket: net.Socket): void {
    socket.on('data', this.#receive);
    socket.on('error', this.#error);
    socket.on('close', this.#close);
  }

  #receive = (chunk: Buffer): void => {
    const bad = this.#parser.feed(chunk, this.#replies);
    if (bad) {
      this.#die({ cause: 'protocol', message: bad });
      return;
    }
    if (!this.#reader) return;
    const reply = this.#replies.shift();
    if (reply) this.#settleRead(reply);
  };

  #error = (err: Error): void => {
    this.#die({ cause: 'socket', message: err.message });
  };

  #close = (): void => {
    this.#die({ cause: 'closed', message: 'connection closed by peer' });
  };

  #abort = (): void => {
    this.#die({ cause: 'aborted', message: 'aborted locally' });
  };

  #timeout = (ms: number): void => {
    this.#die({ cause: 'timeout', message: `no answer within ${ms} ms` });
  };

  #settleRead(r: SmtpReply | WireFault): void {
    clearTimeout(this.#timer);
    const reader = this.#reader;
    this.#reader = null;
    reader?.(r);
  }

  #die(fault: WireFault): WireFault {
    if (!this.#fault) {
      this.#fault = fault;
      this.#signal?.removeEventListener('abort', this.#abort);
      this.#socket.destroy();
    }
    if (this.#reader) this.#settleRead(this.#fault);
    this.#waiter?.(this.#fault);
    return this.#fault;
  }
}
