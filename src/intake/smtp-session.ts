// One SMTP server session: the socket, the input processed one command at a time in arrival
// order, the batched replies, the DATA phase, STARTTLS and the timeouts.
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { SecureContext } from 'node:tls';
import { COMMANDS, endOfData } from './smtp-commands.js';
import type { LineHandler, SessionContext } from './smtp-context.js';
import { DataReader } from './smtp-data.js';
import { InputBuffer, LINE_TOO_LONG } from './smtp-input.js';
import { splitCommand } from './smtp-parse.js';
import { REPLIES, formatReply, reply } from './smtp-reply.js';
import type {
  ClientInfo,
  IntakeLog,
  IntakeReply,
  IntakeServerOptions,
  MailTransaction,
} from './smtp-types.js';

// RFC 5321 §4.5.3.1.4 allows 512 octets per command line with its CRLF. We take up to 4096 so
// MAIL lines with several parameters and long AUTH responses (RFC 4954 §4) get through.
const MAX_COMMAND_LINE = 4096;
// Bytes of unprocessed input (pipelined commands, the next message) held while a hook decides;
// past it the socket is paused until we catch up. 256 KiB holds several pipelined messages.
const INPUT_HIGH_WATER = 256 * 1024;
// Bytes of replies the client has not taken yet; past it we stop processing its commands until
// the socket drains, so a client that pipelines without reading cannot grow our memory.
const OUTPUT_HIGH_WATER = 64 * 1024;

/** What a session needs from its server. */
export interface SessionDeps {
  options: IntakeServerOptions;
  secureContext: SecureContext | undefined;
  log: IntakeLog;
  onClose(session: SmtpSession): void;
}

/** One client connection, from the greeting to the close. */
export class SmtpSession implements SessionContext {
  readonly options: IntakeServerOptions;
  readonly client: ClientInfo;
  readonly log: IntakeLog;
  esmtp = false;
  transaction: MailTransaction | undefined;

  private socket: Socket;
  private readonly raw: Socket;
  private readonly input = new InputBuffer();
  private reader: DataReader | undefined;
  private lineHandler: LineHandler | undefined;
  private out: string[] = [];
  private flushQueued = false;
  private greeted = false;
  // A step is running: a command, maybe awaiting its hook, or the end of a message.
  private busy = false;
  private draining = false;
  private inputPaused = false;
  // Between the 220 to STARTTLS and the end of the handshake: no command is read.
  private upgrading = false;
  private shuttingDown = false;
  // closing: no more input is processed; closed: the socket is gone.
  private closing = false;
  private closed = false;

  constructor(
    socket: Socket,
    private readonly deps: SessionDeps,
    id: string,
  ) {
    this.options = deps.options;
    this.raw = socket;
    this.socket = socket;
    this.client = clientInfo(socket, id);
    this.log = boundLog(deps.log, id);
    this.attach(socket);
  }

  /** Greets the client (or refuses it) and serves its commands; never rejects. */
  async start(): Promise<void> {
    this.log.debug({ remote: this.client.remoteAddress }, 'intake client connected');
    try {
      await this.greet();
    } catch (err) {
      this.log.warn({ err }, 'intake session failed');
      this.destroy();
    }
  }

  /** Asks onConnect, then greets the client or refuses it, then serves its commands. */
  private async greet(): Promise<void> {
    const verdict = await this.connectVerdict();
    if (this.closing) return;
    if (verdict && verdict.code >= 400) {
      this.sendPlain(verdict);
      return this.close();
    }
    if (this.shuttingDown) return this.sayShutdown();
    this.sendPlain(verdict ?? { code: 220, text: `${this.options.hostname} ESMTP` });
    this.flush();
    this.greeted = true;
    await this.pump();
  }

  /** What onConnect says; a failing hook refuses the client for now. */
  private async connectVerdict(): Promise<IntakeReply | undefined> {
    try {
      return await this.options.hooks.onConnect?.(this.client);
    } catch (err) {
      this.log.warn({ err }, 'intake onConnect hook failed');
      const refusal = reply(421, '4.3.0', `${this.options.hostname} Local error, try again later`);
      this.report('connect', refusal);
      return refusal;
    }
  }

  /** Server shutdown: 421 at once when idle, else once the command or message is done. */
  shutdown(): void {
    this.shuttingDown = true;
    if (!this.busy && this.isIdle()) this.sayShutdown();
  }

  /** Drops the connection now. */
  destroy(): void {
    this.socket.destroy();
    if (this.raw !== this.socket) this.raw.destroy();
  }

  // ---- SessionContext ----

  /** Queues a reply, with "<class>.0.0" when it has no enhanced code. */
  send(r: IntakeReply): void {
    this.queue(formatReply(r, true));
  }

  /** Queues a reply that carries no enhanced code by RFC 2034 (greeting, EHLO, HELO, 3xx). */
  sendPlain(r: IntakeReply): void {
    this.queue(formatReply(r, false));
  }

  /** Queues one of our own refusals and tells onReject. */
  refuse(stage: string, r: IntakeReply): void {
    this.send(r);
    this.report(stage, r);
  }

  /** Routes the next line to handler (the AUTH dialogue). */
  expectLine(handler: LineHandler): void {
    this.lineHandler = handler;
  }

  /** 354, then the input is message content until CRLF.CRLF. */
  beginData(): void {
    this.sendPlain({ code: 354, text: 'End data with <CR><LF>.<CR><LF>' });
    this.reader = new DataReader(this.options.maxMessageSize);
    this.socket.setTimeout(this.options.dataTimeoutMs ?? this.options.idleTimeoutMs);
  }

  /** 220, then the TLS handshake on the same connection (RFC 3207 §4). */
  beginTls(): void {
    this.out.push(formatReply({ code: 220, enhanced: '2.0.0', text: 'Ready to start TLS' }, false));
    const greeting = this.out.join('');
    this.out = [];
    // RFC 3207 §5, RFC 2920 §3.1: anything the client pipelined after STARTTLS was sent in
    // clear text and must not run as a command once encrypted (CVE-2011-0411).
    this.input.clear();
    this.upgrading = true;
    this.raw.off('data', this.onData);
    this.raw.off('timeout', this.onTimeout);
    this.raw.setTimeout(0);
    // Paused, the socket keeps what arrives until the TLS layer reads it: an eager client's
    // ClientHello is not lost, and clear text is fed to the handshake, which then fails.
    this.raw.pause();
    this.raw.write(greeting, (err) => (err ? this.destroy() : this.wrapTls()));
  }

  /** Ends the connection once the queued replies are written. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    this.flush();
    this.socket.end();
  }

  // ---- input ----

  private readonly onData = (chunk: Buffer): void => {
    if (this.closing) return;
    this.input.push(chunk);
    if (this.input.size > INPUT_HIGH_WATER && !this.inputPaused) {
      this.inputPaused = true;
      this.socket.pause();
    }
    void this.pump();
  };

  /** Processes queued input one command (or DATA block) at a time, strictly in order. */
  private async pump(): Promise<void> {
    if (this.busy || !this.greeted || this.upgrading) return;
    this.busy = true;
    try {
      while (!this.closing && !this.upgrading && (await this.step())) {
        if (this.shuttingDown && this.isIdle()) this.sayShutdown();
        else if (this.socket.writableLength > OUTPUT_HIGH_WATER) await this.drained();
      }
    } catch (err) {
      this.log.warn({ err }, 'intake session failed');
      this.destroy();
    } finally {
      this.busy = false;
    }
    this.afterPump();
  }

  /** Resumes reading when we caught up; says 421 if the server is shutting down. */
  private afterPump(): void {
    if (this.inputPaused && this.input.size < INPUT_HIGH_WATER / 2) {
      this.inputPaused = false;
      this.socket.resume();
    }
    if (this.shuttingDown && this.isIdle()) this.sayShutdown();
  }

  /** Runs the next command or feeds the DATA reader; false when more input is needed. */
  private async step(): Promise<boolean> {
    if (this.reader) return this.stepData(this.reader);
    const line = this.input.takeLine(MAX_COMMAND_LINE);
    if (line === undefined) return false;
    if (line === LINE_TOO_LONG) this.refuse('command', REPLIES.lineTooLong);
    else await this.onLine(line);
    return true;
  }

  /** Feeds input to the DATA reader; at the end of data, the message's final reply. */
  private async stepData(reader: DataReader): Promise<boolean> {
    const chunk = this.input.takeAll();
    if (chunk === undefined) return false;
    const end = reader.push(chunk);
    if (end < 0) return false;
    this.input.unshift(chunk.subarray(end));
    this.reader = undefined;
    this.socket.setTimeout(this.options.idleTimeoutMs);
    await this.run('data', () => endOfData(this, reader));
    return true;
  }

  /** One command line, or the next line of an AUTH dialogue. */
  private async onLine(line: string): Promise<void> {
    const pending = this.lineHandler;
    if (pending) {
      this.lineHandler = undefined;
      return this.run('auth', () => pending(line));
    }
    if (line.includes('\0')) return this.refuse('command', REPLIES.nul);
    const { verb, arg } = splitCommand(line);
    const handler = COMMANDS.get(verb);
    if (!handler) return this.refuse('command', REPLIES.unrecognized);
    return this.run(verb.toLowerCase(), () => handler(this, arg));
  }

  /** Runs a handler; a hook that throws costs the client a 451, not the session. */
  private async run(stage: string, handler: () => void | Promise<void>): Promise<void> {
    try {
      await handler();
    } catch (err) {
      this.log.warn({ err, stage }, 'intake hook failed');
      this.refuse(stage, REPLIES.localError);
    }
  }

  // ---- output ----

  /** Adds a reply to the batch written once this turn of the event loop is done. */
  private queue(text: string): void {
    if (this.closed) return;
    this.out.push(text);
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(this.flush);
  }

  /** Writes the queued replies in one write: pipelined commands get their replies together. */
  private readonly flush = (): void => {
    this.flushQueued = false;
    if (this.out.length === 0) return;
    const text = this.out.join('');
    this.out = [];
    if (!this.closed && this.socket.writable) this.socket.write(text);
  };

  /** Resolves when the socket drained its write buffer or closed. */
  private async drained(): Promise<void> {
    const socket = this.socket;
    this.draining = true;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        socket.off('drain', done);
        socket.off('close', done);
        resolve();
      };
      socket.on('drain', done);
      socket.on('close', done);
    });
    this.draining = false;
  }

  // ---- TLS ----

  /** Starts the TLS handshake on the raw connection. */
  private wrapTls(): void {
    if (this.closed) return;
    const secureContext = this.deps.secureContext;
    const tls = new TLSSocket(this.raw, { isServer: true, secureContext });
    this.socket = tls;
    this.attach(tls);
    tls.once('secure', () => this.onSecure(tls));
  }

  /** TLS is up: forget what the client said in clear text (RFC 3207 §4.2), then serve it. */
  private onSecure(tls: TLSSocket): void {
    this.upgrading = false;
    this.client.tls = true;
    this.client.helo = undefined;
    this.client.user = undefined;
    this.esmtp = false;
    this.transaction = undefined;
    this.lineHandler = undefined;
    const protocol = tls.getProtocol();
    this.log.debug({ protocol, cipher: tls.getCipher().name }, 'intake TLS established');
    void this.pump();
  }

  // ---- socket events ----

  /** Listens to a socket (the raw one, later the TLS one). */
  private attach(socket: Socket): void {
    socket.on('data', this.onData);
    socket.on('timeout', this.onTimeout);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
    socket.setTimeout(this.options.idleTimeoutMs);
  }

  private readonly onTimeout = (): void => {
    // A hook is deciding: its reply's write re-arms the timer.
    // Limitation: a hook that never settles keeps its session open until close() destroys it;
    // the intake does not bound hook time, so such a hook costs one of maxClients for good.
    if (this.busy && !this.draining) return;
    if (this.closing || this.upgrading || this.draining) return this.destroy();
    const text = `${this.options.hostname} Error: timeout exceeded`;
    this.refuse('timeout', reply(421, '4.4.2', text));
    this.close();
  };

  private readonly onError = (err: Error): void => {
    // Resets and TLS garbage are routine on the internet; TLS failures are worth a warning.
    if (this.upgrading) this.log.warn({ err }, 'intake TLS handshake failed');
    else this.log.debug({ err }, 'intake socket error');
    this.destroy();
  };

  private readonly onClose = (): void => {
    if (this.closed) return;
    this.closed = true;
    this.closing = true;
    this.reader = undefined;
    this.transaction = undefined;
    this.input.clear();
    this.log.debug({}, 'intake client disconnected');
    this.deps.onClose(this);
  };

  /** True when waiting for a command (not in DATA, TLS set-up or closing). */
  private isIdle(): boolean {
    return this.greeted && !this.reader && !this.upgrading && !this.closing;
  }

  /** 421 4.3.2 and close. */
  private sayShutdown(): void {
    this.refuse('shutdown', REPLIES.shuttingDown);
    this.close();
  }

  /** Tells onReject; a throwing onReject is logged and otherwise ignored. */
  private report(stage: string, r: IntakeReply): void {
    try {
      this.options.hooks.onReject?.(this.client, stage, r);
    } catch (err) {
      this.log.warn({ err }, 'intake onReject hook failed');
    }
  }
}

/** The client facts of a new connection. */
export function clientInfo(socket: Socket, id: string): ClientInfo {
  return {
    id,
    remoteAddress: socket.remoteAddress ?? '',
    remotePort: socket.remotePort ?? 0,
    localAddress: socket.localAddress ?? '',
    localPort: socket.localPort ?? 0,
    tls: false,
  };
}

/** A log that adds the session id to every entry. */
function boundLog(log: IntakeLog, session: string): IntakeLog {
  return {
    debug: (obj, msg) => log.debug({ session, ...obj }, msg),
    warn: (obj, msg) => log.warn({ session, ...obj }, msg),
  };
}
