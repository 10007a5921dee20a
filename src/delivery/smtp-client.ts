/**
 * The outbound SMTP client: one session with one MX host, written as two explicit state
 * machines with a small handler per state.
 *
 * Opening:     connect -> greeting -> ehlo (-> helo) -> starttls -> ehlo -> ready
 * Transaction: mail -> rcpt (once per recipient) -> data -> body -> dot -> done
 *
 * With PIPELINING (RFC 2920) the whole envelope (MAIL, every RCPT, DATA) leaves in one socket
 * write and the handlers only read the replies in order; without it each handler writes its
 * command first (lock-step). Every remote reply, timeout, connection loss and TLS failure comes
 * back as a value carrying an SmtpReply with an enhanced status code. Only broken invariants
 * (two commands at once on one session, an envelope without recipients) throw.
 */
import { isAscii } from 'node:buffer';
import type { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { formatReply, localReply, replyFromLines, type SmtpReply } from './reply.js';

/** Client timeouts in milliseconds, one per wait of the conversation. */
export interface ClientTimeouts {
  connect: number;
  greeting: number;
  ehlo: number;
  starttls: number;
  mail: number;
  rcpt: number;
  dataInit: number;
  dataBlock: number;
  dataDone: number;
  quit: number;
}

/** Default timeouts: RFC 5321 §4.5.3.2 where it gives one, our own bounds elsewhere. */
export const RFC5321_TIMEOUTS: ClientTimeouts = {
  // Not in the RFC: 30 s is far above any healthy TCP handshake, and a dead host must not
  // hold a connection slot for minutes.
  connect: 30_000,
  // §4.5.3.2.1 initial 220 message: 5 minutes.
  greeting: 300_000,
  // The RFC names no EHLO or STARTTLS timeout; both get the MAIL value (§4.5.3.2.2: 5 minutes),
  // which also bounds the TLS handshake.
  ehlo: 300_000,
  starttls: 300_000,
  // §4.5.3.2.2 MAIL: 5 minutes.
  mail: 300_000,
  // §4.5.3.2.3 RCPT: 5 minutes.
  rcpt: 300_000,
  // §4.5.3.2.4 DATA initiation (the 354): 2 minutes.
  dataInit: 120_000,
  // §4.5.3.2.5 data block: 3 minutes for each send of a chunk of the body to complete.
  dataBlock: 180_000,
  // §4.5.3.2.6 data termination (reply to the final dot): 10 minutes.
  dataDone: 600_000,
  // Not in the RFC: QUIT is a courtesy; 5 s is plenty for a 221 and bounds shutdown.
  quit: 5_000,
};

/** How to open one session. */
export interface SessionOptions {
  /** Address to connect to, already resolved by our MX lookup. */
  ip: string;
  port: number;
  /** The MX name: TLS SNI (unless it is an IP literal) and logs/records. */
  mxHost: string;
  /** Egress source IP to bind before connecting. */
  localAddress?: string;
  /** Our EHLO/HELO name. */
  helo: string;
  /**
   * opportunistic: STARTTLS when offered, certificate not verified (RFC 7435); a failed
   * handshake fails the session (no plaintext retry on a fresh connection).
   * required: fail the session when STARTTLS is not offered or not completed.
   */
  tls: 'opportunistic' | 'required' | 'disabled';
  timeouts: ClientTimeouts;
  /** Aborts the session; it adds one listener per live session (see events.setMaxListeners). */
  signal?: AbortSignal;
}

/** Why a session could not be opened; reply is synthesized when the server gave none. */
export type OpenFailure = {
  stage: 'connect' | 'greeting' | 'ehlo' | 'starttls';
  reply: SmtpReply;
};

/** The outcome of openSession. */
export type OpenResult = { ok: true; session: SmtpSession } | ({ ok: false } & OpenFailure);

/** One transaction's envelope. */
export interface Envelope {
  /** Envelope sender; '' for the null reverse-path. */
  from: string;
  recipients: string[];
  /** Needs SMTPUTF8 (also assumed when an address is not ASCII). */
  smtputf8?: boolean;
}

/** Where and how a transaction lost its connection. */
export interface TransactionFailure {
  stage: 'mail' | 'rcpt' | 'data' | 'body' | 'dot';
  kind: 'timeout' | 'closed' | 'error';
  message: string;
}

/** Everything the server said during one transaction, and each recipient's outcome. */
export interface TransactionResult {
  /** Reply to MAIL FROM, or synthesized when MAIL was never sent. */
  mail: SmtpReply;
  /** One per envelope recipient, in order: the RCPT reply unless 2xx, else the final reply. */
  recipients: { address: string; reply: SmtpReply }[];
  /** The RCPT replies as received, in order, 2xx text included. */
  rcptReplies: SmtpReply[];
  /** Reply to the final dot, when reached. */
  data?: SmtpReply;
  /** Connection-level failure; unsettled recipients then carry a synthesized 4xx. */
  failure?: TransactionFailure;
  timings: { startedAt: number; envelopeMs: number; dataMs: number };
}

// Limits on what a server may send us. RFC 5321 §4.5.3.1.5 caps a reply line at 512 octets;
// real servers exceed it, so we allow 16 times that. The caps bound memory against a hostile
// or broken peer, not normal traffic.
const MAX_LINE_BYTES = 8192;
// Lines in one multi-line reply: an EHLO reply has a few dozen at most.
const MAX_REPLY_LINES = 500;
// Bytes per socket write of the body: big enough for few syscalls, small enough that each
// drain wait (bounded by timeouts.dataBlock) covers a bounded amount of data.
const BLOCK_BYTES = 64 * 1024;

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

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CRLF = Buffer.from('\r\n');
const STUFFED_DOT = Buffer.from('.');
const END_OF_DATA = Buffer.from('.\r\n');
const CRLF_END_OF_DATA = Buffer.from('\r\n.\r\n');

/**
 * The body as it goes on the wire, in pieces (mostly zero-copy slices of body): every line
 * starting with '.' gets one more (RFC 5321 §4.5.2), every bare CR or bare LF becomes CRLF
 * so no '\n.\n'-style sequence can end the data early at a lenient server (SMTP smuggling),
 * and the data ends with CRLF.CRLF.
 */
export function* dataPieces(body: Buffer): Generator<Buffer> {
  let from = 0; // first byte not yet yielded
  let pos = 0; // start of the current line
  let cr = body.indexOf(CR);
  let lf = body.indexOf(LF);
  while (pos < body.length) {
    if (body[pos] === DOT) {
      if (pos > from) yield body.subarray(from, pos);
      yield STUFFED_DOT;
      from = pos;
    }
    // Each search restarts only once passed, so the scan stays linear in the body size.
    if (cr !== -1 && cr < pos) cr = body.indexOf(CR, pos);
    if (lf !== -1 && lf < pos) lf = body.indexOf(LF, pos);
    if (cr === -1 && lf === -1) break;
    const brk = cr !== -1 && (lf === -1 || cr < lf) ? cr : lf;
    if (brk === cr && lf === cr + 1) {
      pos = lf + 1;
      continue;
    }
    if (brk > from) yield body.subarray(from, brk);
    yield CRLF;
    from = pos = brk + 1;
  }
  if (from < body.length) yield body.subarray(from);
  const last = body[body.length - 1];
  yield last === undefined || last === CR || last === LF ? END_OF_DATA : CRLF_END_OF_DATA;
}

/** dataPieces grouped into socket writes of at most BLOCK_BYTES (small pieces are copied). */
export function* dataBlocks(body: Buffer): Generator<Buffer> {
  let batch: Buffer[] = [];
  let size = 0;
  for (const piece of dataPieces(body)) {
    if (size + piece.length > BLOCK_BYTES && batch.length > 0) {
      yield joined(batch, size);
      batch = [];
      size = 0;
    }
    if (piece.length >= BLOCK_BYTES) {
      for (let at = 0; at < piece.length; at += BLOCK_BYTES) {
        yield piece.subarray(at, at + BLOCK_BYTES);
      }
      continue;
    }
    batch.push(piece);
    size += piece.length;
  }
  if (batch.length > 0) yield joined(batch, size);
}

/** One buffer of the pieces: the piece itself when alone (no copy). */
function joined(batch: Buffer[], size: number): Buffer {
  return batch.length === 1 && batch[0] ? batch[0] : Buffer.concat(batch, size);
}

/** Why the connection failed under a read, a write or a wait. */
interface WireFault {
  cause: 'timeout' | 'closed' | 'socket' | 'protocol' | 'aborted';
  message: string;
}

function isFault(r: SmtpReply | WireFault): r is WireFault {
  return 'cause' in r;
}

/**
 * The socket plus the reply parser. At most one read or wait is outstanding (the protocol is
 * sequential). Any fault kills the wire for good: after a timeout the reply stream can no
 * longer be matched to commands. Replies received before a fault are still handed out first.
 */
class Wire {
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

// ---------------------------------------------------------------------------------------------
// Opening: connect -> greeting -> ehlo (-> helo) -> starttls -> ehlo -> ready

type OpenState = 'connect' | 'greeting' | 'ehlo' | 'helo' | 'starttls' | 'ready';
type OpenStep = OpenState | OpenFailure;

/** What the opening handlers learn along the way. */
interface Opening {
  opts: SessionOptions;
  wire: Wire;
  greeting: SmtpReply;
  extensions: Map<string, string>;
  tls: boolean;
}

/** Opens a session: connect, greeting, EHLO or HELO, STARTTLS per opts.tls. */
export async function openSession(opts: SessionOptions): Promise<OpenResult> {
  const socket = net.connect({
    host: opts.ip,
    port: opts.port,
    localAddress: opts.localAddress,
    noDelay: true,
  });
  const wire = new Wire(socket, opts.signal);
  const o: Opening = { opts, wire, greeting: NO_GREETING, extensions: new Map(), tls: false };
  let step: OpenStep = 'connect';
  while (typeof step === 'string' && step !== 'ready') step = await OPEN_HANDLERS[step](o);
  if (typeof step !== 'string') {
    await wire.quit(opts.timeouts.quit);
    return { ok: false, ...step };
  }
  return { ok: true, session: new SmtpSession(o) };
}

const NO_GREETING = localReply(421, '4.4.2', 'no greeting yet');

const OPEN_HANDLERS: Record<Exclude<OpenState, 'ready'>, (o: Opening) => Promise<OpenStep>> = {
  connect: onConnect,
  greeting: onGreeting,
  ehlo: onEhlo,
  helo: onHelo,
  starttls: onStartTls,
};

async function onConnect(o: Opening): Promise<OpenStep> {
  const fault = await o.wire.waitFor(o.wire.socket, 'connect', o.opts.timeouts.connect);
  return fault ? openFault('connect', fault, o.opts) : 'greeting';
}

async function onGreeting(o: Opening): Promise<OpenStep> {
  const r = await o.wire.read(o.opts.timeouts.greeting);
  if (isFault(r)) return openFault('greeting', r, o.opts);
  o.greeting = r;
  return r.code === 220 ? 'ehlo' : { stage: 'greeting', reply: r };
}

async function onEhlo(o: Opening): Promise<OpenStep> {
  o.wire.write(`EHLO ${o.opts.helo}\r\n`);
  const r = await o.wire.read(o.opts.timeouts.ehlo);
  if (isFault(r)) return openFault('ehlo', r, o.opts);
  if (r.code === 250) {
    o.extensions = parseExtensions(r);
    return afterHello(o);
  }
  // RFC 5321 §4.1.4: a server that does not know EHLO answers 5xx; the client may use HELO.
  // After STARTTLS the server has already shown it knows EHLO (RFC 3207 §4.2 requires it).
  return r.code >= 500 && !o.tls ? 'helo' : { stage: 'ehlo', reply: r };
}

async function onHelo(o: Opening): Promise<OpenStep> {
  o.wire.write(`HELO ${o.opts.helo}\r\n`);
  const r = await o.wire.read(o.opts.timeouts.ehlo);
  if (isFault(r)) return openFault('ehlo', r, o.opts);
  if (r.code !== 250) return { stage: 'ehlo', reply: r };
  o.extensions = new Map();
  return afterHello(o);
}

function afterHello(o: Opening): OpenStep {
  const mode = o.opts.tls;
  if (o.tls || mode === 'disabled') return 'ready';
  if (o.extensions.has('STARTTLS')) return 'starttls';
  if (mode === 'opportunistic') return 'ready';
  const text = 'TLS is required but the server does not offer STARTTLS';
  return { stage: 'starttls', reply: localReply(421, '4.7.4', text) };
}

async function onStartTls(o: Opening): Promise<OpenStep> {
  o.wire.write('STARTTLS\r\n');
  const r = await o.wire.read(o.opts.timeouts.starttls);
  if (isFault(r)) return openFault('starttls', r, o.opts);
  if (r.code !== 220) return starttlsRefused(o, r);
  const sni = net.isIP(o.opts.mxHost) ? undefined : o.opts.mxHost;
  const fault = await o.wire.startTls(sni, o.opts.timeouts.starttls);
  if (fault) return openFault('starttls', fault, o.opts);
  o.tls = true;
  // RFC 3207 §4.2: forget what the server said before TLS and ask again.
  o.extensions = new Map();
  return 'ehlo';
}

function starttlsRefused(o: Opening, r: SmtpReply): OpenStep {
  // RFC 3207 §4: after a refused STARTTLS the client may go on in plaintext, which is what
  // opportunistic TLS means; a 421 closes the session anyway.
  if (o.opts.tls === 'opportunistic' && r.code !== 421) return 'ready';
  return { stage: 'starttls', reply: r };
}

const OPEN_WAITS: Record<OpenFailure['stage'], string> = {
  connect: 'connecting',
  greeting: 'waiting for the greeting',
  ehlo: 'waiting for the reply to EHLO/HELO',
  starttls: 'during STARTTLS',
};

/** The synthesized 421 for an opening stage that ended without a usable server reply. */
function openFault(stage: OpenFailure['stage'], f: WireFault, opts: SessionOptions): OpenFailure {
  const where = `${OPEN_WAITS[stage]} to ${opts.mxHost} [${opts.ip}]:${opts.port}`;
  const texts: Record<WireFault['cause'], string> = {
    timeout: `timeout ${where} (${f.message})`,
    closed: `connection lost ${where}`,
    socket: `connection error ${where}: ${f.message}`,
    protocol: `protocol error ${where}: ${f.message}`,
    aborted: `session aborted locally ${where}`,
  };
  // X.4.1 "no answer from host" while connecting; X.4.2 "bad connection" once connected.
  let enhanced = stage === 'connect' ? '4.4.1' : '4.4.2';
  if (f.cause === 'protocol') enhanced = '4.5.0';
  if (f.cause === 'aborted') enhanced = '4.3.0';
  return { stage, reply: localReply(421, enhanced, texts[f.cause]) };
}

/** EHLO keywords (upper case) to their parameters; the first line is the server's name. */
function parseExtensions(r: SmtpReply): Map<string, string> {
  const ext = new Map<string, string>();
  for (const line of r.text.split('\n').slice(1)) {
    const m = /^\s*([A-Za-z0-9][A-Za-z0-9-]*)(?:[ =](.*))?$/.exec(line);
    if (m?.[1]) ext.set(m[1].toUpperCase(), (m[2] ?? '').trim());
  }
  return ext;
}

// ---------------------------------------------------------------------------------------------
// The session

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

/** A reply for every recipient without sending anything, or null when the envelope can go. */
function localRefusal(
  env: Envelope,
  body: Buffer,
  ext: ReadonlyMap<string, string>,
): SmtpReply | null {
  if (hasControlChars(env.from)) {
    return localReply(501, '5.1.7', 'sender address contains control characters');
  }
  if (needsUtf8(env) && !ext.has('SMTPUTF8')) {
    // RFC 6531 §3.4: without SMTPUTF8 at the server the message cannot be delivered as is.
    return localReply(553, '5.6.7', 'SMTPUTF8 is required but the server does not offer it');
  }
  const max = Number(ext.get('SIZE'));
  if (max > 0 && body.length > max) {
    // RFC 1870 §6: do not send a message larger than the server's declared maximum.
    const text = `message size ${body.length} exceeds the server's SIZE limit ${max}`;
    return localReply(552, '5.3.4', text);
  }
  return null;
}

const CONTROL_CHARS = /[\x00-\x1f\x7f]/;
const NON_ASCII = /[^\x00-\x7f]/;

// CR or LF in an address would inject commands; no control character is valid in one.
function hasControlChars(address: string): boolean {
  return CONTROL_CHARS.test(address);
}

function needsUtf8(env: Envelope): boolean {
  return env.smtputf8 === true || NON_ASCII.test(env.from) || env.recipients.some(isNonAscii);
}

function isNonAscii(s: string): boolean {
  return NON_ASCII.test(s);
}

/** MAIL parameters: SIZE (RFC 1870), BODY=8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531). */
function mailParameters(env: Envelope, body: Buffer, ext: ReadonlyMap<string, string>): string {
  let params = '';
  if (ext.has('SIZE')) params += ` SIZE=${body.length}`;
  // Limitation: an 8-bit body goes as is to a server without 8BITMIME (no conversion to
  // quoted-printable); most servers accept it, a strict one may reject the message.
  if (ext.has('8BITMIME') && !isAscii(body)) params += ' BODY=8BITMIME';
  if (needsUtf8(env)) params += ' SMTPUTF8';
  return params;
}

// ---------------------------------------------------------------------------------------------
// The transaction: mail -> rcpt (per recipient) -> data -> body -> dot -> done

type TxnStage = TransactionFailure['stage'];
type TxnState = TxnStage | 'done';

/** The state of one transaction; the handlers below move it along. */
class Transaction {
  readonly startedAt = Date.now();
  readonly finals: (SmtpReply | undefined)[];
  readonly rcptReplies: SmtpReply[] = [];
  /** Indexes into env.recipients of the recipients that go on the wire. */
  sendList: number[] = [];
  mailCommand = '';
  mail?: SmtpReply;
  data?: SmtpReply;
  failure?: TransactionFailure;
  accepted = 0;
  nextRcpt = 0;
  envelopeDoneAt = 0;
  bodyStartedAt = 0;
  completed = false;
  closing = false;

  constructor(
    readonly env: Envelope,
    readonly body: Buffer,
    readonly wire: Wire,
    readonly timeouts: ClientTimeouts,
  ) {
    this.finals = env.recipients.map(() => undefined);
  }

  /** Builds the commands; false when no recipient is left to send to. */
  prepare(ext: ReadonlyMap<string, string>): boolean {
    const bad = localReply(501, '5.1.3', 'recipient address contains control characters');
    this.env.recipients.forEach((r, i) => {
      if (hasControlChars(r)) this.finals[i] = bad;
      else this.sendList.push(i);
    });
    const params = mailParameters(this.env, this.body, ext);
    this.mailCommand = `MAIL FROM:<${this.env.from}>${params}\r\n`;
    if (this.sendList.length > 0) return true;
    this.mail = localReply(501, '5.1.3', 'no valid recipient address');
    return false;
  }

  rcptCommand(n: number): string {
    return `RCPT TO:<${this.env.recipients[this.rcptIndex(n)] ?? ''}>\r\n`;
  }

  /** The recipient behind the n-th RCPT. */
  rcptIndex(n: number): number {
    return this.sendList[n] ?? -1;
  }

  settle(i: number, reply: SmtpReply): void {
    if (i >= 0 && i < this.finals.length && !this.finals[i]) this.finals[i] = reply;
  }

  settleRest(reply: SmtpReply): void {
    for (let i = 0; i < this.finals.length; i++) this.settle(i, reply);
  }

  /** Nothing is sent: every recipient gets reply. */
  refuse(reply: SmtpReply): TransactionResult {
    this.mail = reply;
    this.settleRest(reply);
    return this.result();
  }

  /** A 421: the server is closing; every unsettled recipient carries it. */
  closeWith(reply: SmtpReply): TxnState {
    this.closing = true;
    this.settleRest(reply);
    return 'done';
  }

  /** The connection failed at stage: record it and settle the rest with a synthesized 4xx. */
  fault(stage: TxnStage, f: WireFault): TxnState {
    const kind = f.cause === 'timeout' || f.cause === 'closed' ? f.cause : 'error';
    this.failure = { stage, kind, message: f.message };
    this.settleRest(transactionFaultReply(stage, f));
    return 'done';
  }

  result(): TransactionResult {
    const end = Date.now();
    const recipients = this.env.recipients.map((address, i) => ({
      address,
      reply: this.finals[i] ?? UNSETTLED,
    }));
    const envelopeEnd = this.envelopeDoneAt || end;
    const result: TransactionResult = {
      mail: this.mail ?? this.finals.find((r) => r !== undefined) ?? UNSETTLED,
      recipients,
      rcptReplies: this.rcptReplies,
      timings: {
        startedAt: this.startedAt,
        envelopeMs: envelopeEnd - this.startedAt,
        dataMs: this.bodyStartedAt ? end - this.bodyStartedAt : 0,
      },
    };
    if (this.data) result.data = this.data;
    if (this.failure) result.failure = this.failure;
    return result;
  }
}

// Every path settles every recipient; this only shows up if that invariant is ever broken.
const UNSETTLED = localReply(451, '4.3.0', 'internal error: recipient left without outcome');

const COMMAND_NAMES: Record<TxnStage, string> = {
  mail: 'MAIL FROM',
  rcpt: 'RCPT TO',
  data: 'DATA',
  body: 'DATA',
  dot: 'final dot',
};

/** The 451 a recipient carries when the connection failed at stage. */
function transactionFaultReply(stage: TxnStage, f: WireFault): SmtpReply {
  const name = COMMAND_NAMES[stage];
  switch (f.cause) {
    case 'timeout':
      if (stage === 'body') return localReply(451, '4.4.7', 'timeout sending message body');
      return localReply(451, '4.4.7', `timeout waiting for reply to ${name}`);
    case 'closed':
      return localReply(451, '4.4.2', `connection lost during ${name}`);
    case 'socket':
      return localReply(451, '4.4.2', `connection lost during ${name}: ${f.message}`);
    case 'protocol':
      return localReply(451, '4.5.0', `protocol error during ${name}: ${f.message}`);
    case 'aborted':
      return localReply(451, '4.3.0', `delivery aborted locally during ${name}`);
  }
}

const TXN_HANDLERS: Record<TxnStage, (t: Transaction, pipelined: boolean) => Promise<TxnState>> = {
  mail: onMailReply,
  rcpt: onRcptReply,
  data: onDataReply,
  body: onBody,
  dot: onDotReply,
};

/** Runs one transaction to its end; with pipelining the envelope goes out in one write. */
async function runTransaction(t: Transaction, pipelined: boolean): Promise<void> {
  if (pipelined) {
    const rcpts = t.sendList.map((_, n) => t.rcptCommand(n)).join('');
    t.wire.write(`${t.mailCommand}${rcpts}DATA\r\n`);
  }
  let state: TxnState = 'mail';
  while (state !== 'done') state = await TXN_HANDLERS[state](t, pipelined);
}

function isPositive(r: SmtpReply | undefined): boolean {
  return r !== undefined && r.code >= 200 && r.code < 300;
}

async function onMailReply(t: Transaction, pipelined: boolean): Promise<TxnState> {
  if (!pipelined) t.wire.write(t.mailCommand);
  const r = await t.wire.read(t.timeouts.mail);
  if (isFault(r)) return t.fault('mail', r);
  t.mail = r;
  if (r.code === 421) return t.closeWith(r);
  if (isPositive(r)) return 'rcpt';
  // Every recipient carries the MAIL rejection; pipelined, the RCPT and DATA replies (503)
  // are still on their way and must be read to stay in step.
  t.settleRest(r);
  return pipelined ? 'rcpt' : 'done';
}

async function onRcptReply(t: Transaction, pipelined: boolean): Promise<TxnState> {
  const n = t.nextRcpt++;
  if (!pipelined) t.wire.write(t.rcptCommand(n));
  const r = await t.wire.read(t.timeouts.rcpt);
  if (isFault(r)) return t.fault('rcpt', r);
  t.rcptReplies.push(r);
  if (r.code === 421) return t.closeWith(r);
  if (isPositive(r) && isPositive(t.mail)) t.accepted++;
  else t.settle(t.rcptIndex(n), r);
  if (t.nextRcpt < t.sendList.length) return 'rcpt';
  return pipelined || t.accepted > 0 ? 'data' : 'done';
}

async function onDataReply(t: Transaction, pipelined: boolean): Promise<TxnState> {
  if (!pipelined) t.wire.write('DATA\r\n');
  const r = await t.wire.read(t.timeouts.dataInit);
  if (isFault(r)) return t.fault('data', r);
  t.envelopeDoneAt = Date.now();
  if (r.code === 421) return t.closeWith(r);
  if (r.code !== 354) {
    // With no recipient accepted this is the expected 503/554 (RFC 2920 §3.1).
    t.settleRest(r);
    return 'done';
  }
  if (t.accepted > 0) return 'body';
  // RFC 2920 §3.1: a server that says 354 with no valid recipient gets an empty message.
  t.wire.write(END_OF_DATA);
  return 'dot';
}

async function onBody(t: Transaction): Promise<TxnState> {
  t.bodyStartedAt = Date.now();
  for (const block of dataBlocks(t.body)) {
    if (t.wire.write(block)) continue;
    const fault = await t.wire.drain(t.timeouts.dataBlock);
    if (fault) return t.fault('body', fault);
  }
  return 'dot';
}

async function onDotReply(t: Transaction): Promise<TxnState> {
  const r = await t.wire.read(t.timeouts.dataDone);
  if (isFault(r)) return t.fault('dot', r);
  t.data = r;
  t.completed = true;
  if (r.code === 421) return t.closeWith(r);
  t.settleRest(r);
  return 'done';
}
