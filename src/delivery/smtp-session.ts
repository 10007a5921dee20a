/**
 * An open SMTP session with one MX host, built by openSession once the opening succeeded. It
 * runs transactions one at a time, checks the connection between them (a reply that came
 * unasked ends the session), sends RSET after an aborted transaction, and QUIT on close.
 * Only broken invariants (two commands at once on one session, an envelope without
 * recipients) throw.
 */
import { formatReply, type SmtpReply } from './reply.js';
import { localRefusal, runTransaction, Transaction } from './smtp-transaction.js';
import type { ClientTimeouts, Envelope, SessionOptions, TransactionResult } from './smtp-types.js';
import { isFault, type Wire, type WireFault } from './smtp-wire.js';

/**
 * What the opening handlers learn along the way; a session is built from it. It lives here,
 * not in smtp-open.ts, so that the session never imports the opening (no import cycle).
 */
export interface Opening {
  opts: SessionOptions;
  wire: Wire;
  greeting: SmtpReply;
  extensions: Map<string, string>;
  tls: boolean;
}

/** An open SMTP session with one MX host: sends transactions one at a time. */
export class SmtpSession {
  readonly mxHost: string;
  readonly remoteIp: string;
  readonly localAddress: string;
  readonly tls: boolean;
  readonly tlsVersion?: string;
  readonly greeting: SmtpReply;
  readonly extensions: ReadonlyMap<string, string>;
  readonly #wire: Wire;
  readonly #timeouts: ClientTimeouts;
  #busy = false;
  #broken = false;
  #needsReset = false;
  #transactions = 0;

  /** Built by openSession only. */
  constructor(o: Opening) {
    this.mxHost = o.opts.mxHost;
    this.remoteIp = o.opts.ip;
    this.localAddress = o.wire.socket.localAddress ?? '';
    this.tls = o.tls;
    this.tlsVersion = o.wire.tlsVersion;
    this.greeting = o.greeting;
    this.extensions = o.extensions;
    this.#wire = o.wire;
    this.#timeouts = o.opts.timeouts;
  }

  /** False after a connection failure, a 421, or close. */
  get usable(): boolean {
    return !this.#broken && this.#wire.alive;
  }

  /** Transactions started on this session (MAIL sent). */
  get transactions(): number {
    return this.#transactions;
  }

  /** Sends one message to the envelope's recipients; resets first if the last one aborted. */
  async send(env: Envelope, body: Buffer): Promise<TransactionResult> {
    if (env.recipients.length === 0) {
      throw new Error('SmtpSession.send: envelope has no recipients');
    }
    this.#enter('send');
    try {
      return await this.#transact(new Transaction(env, body, this.#wire, this.#timeouts));
    } finally {
      this.#busy = false;
    }
  }

  /** RSET when the previous transaction was aborted; false when the session is unusable. */
  async reset(): Promise<boolean> {
    this.#enter('reset');
    try {
      return await this.#reset();
    } finally {
      this.#busy = false;
    }
  }

  /** QUIT (bounded by timeouts.quit), then closes the socket; never throws. */
  async close(): Promise<void> {
    if (this.#busy || !this.usable) return this.destroy();
    this.#broken = true;
    await this.#wire.quit(this.#timeouts.quit);
  }

  /** Closes the socket at once. */
  destroy(): void {
    this.#broken = true;
    this.#wire.destroy();
  }

  #enter(what: string): void {
    if (this.#busy) throw new Error(`SmtpSession.${what}: another command is in progress`);
    this.#busy = true;
  }

  async #transact(t: Transaction): Promise<TransactionResult> {
    const refusal = localRefusal(t.env, t.body, this.extensions);
    if (refusal) return t.refuse(refusal);
    if (!t.prepare(this.extensions) || !(await this.#ready(t))) return t.result();
    this.#transactions++;
    await runTransaction(t, this.extensions.has('PIPELINING'));
    this.#needsReset = !t.completed;
    if (t.closing) this.destroy();
    return t.result();
  }

  /** Makes sure the session can take MAIL now: nothing unsolicited, RSET done if needed. */
  async #ready(t: Transaction): Promise<boolean> {
    if (!this.#idleOk(t)) return false;
    if (await this.#reset()) return true;
    t.fault('mail', LOST_BEFORE_MAIL);
    return false;
  }

  /** Checks the session between transactions; a reply that came unasked ends it. */
  #idleOk(t: Transaction): boolean {
    const unsolicited = this.#wire.takeUnsolicited();
    if (unsolicited) {
      // Usually a 421 sent before the server's idle close; anything else is a desync.
      this.destroy();
      if (unsolicited.code === 421) t.closeWith(unsolicited);
      else
        t.fault('mail', { cause: 'protocol', message: `unsolicited ${formatReply(unsolicited)}` });
      return false;
    }
    if (this.usable) return true;
    t.fault('mail', LOST_BEFORE_MAIL);
    return false;
  }

  async #reset(): Promise<boolean> {
    if (!this.usable) return false;
    if (!this.#needsReset) return true;
    this.#wire.write('RSET\r\n');
    // RFC 5321 gives RSET no timeout of its own; the MAIL one (§4.5.3.2.2) is the closest.
    const r = await this.#wire.read(this.#timeouts.mail);
    if (!isFault(r) && r.code >= 200 && r.code < 300) {
      this.#needsReset = false;
      return true;
    }
    this.destroy();
    return false;
  }
}

const LOST_BEFORE_MAIL: WireFault = { cause: 'closed', message: 'session no longer usable' };
