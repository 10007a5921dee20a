// One connection to a test receiver: the server side of the SMTP conversation, driven by a script.
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { SecureContext } from 'node:tls';
import type { ConnInfo, ReceivedMessage, ReceiverAction, ReceiverScript } from './script.js';
import type { Transaction } from './script.js';
import { DataCollector, formatReply, replyCode } from './smtp-wire.js';

/** What a session needs from its receiver: settings, the live script, and where results go. */
export interface SessionHost {
  readonly hostname: string;
  readonly pipelining: boolean;
  readonly requireTls: boolean;
  readonly maxMessageBytes: number;
  /** Present when STARTTLS is offered. */
  readonly secureContext: SecureContext | undefined;
  script(): ReceiverScript;
  log(line: string): void;
  nextQueueId(): string;
  store(m: ReceivedMessage): void;
  /** A script hook threw, or the session hit a bug; the error is kept for the test to see. */
  failed(err: unknown): void;
  secured(c: ConnInfo): void;
  closed(c: ConnInfo): void;
}

type Mode = 'command' | 'data' | 'stalled' | 'upgrading' | 'delaying' | 'closed';

// RFC 5321 §4.5.3.1.4 allows 512 bytes per command line; we take longer ones so that ESMTP
// parameters never trip the limit, and still bound the memory a garbage line can use (bytes).
const MAX_COMMAND_BYTES = 4096;
// RFC 5321 §4.5.3.1.8: a server must take at least 100 recipients per transaction.
const MAX_RECIPIENTS = 1000;
// Like a production server's error limit: a client that keeps sending garbage is cut off.
const MAX_BAD_COMMANDS = 20;
// RFC 5321 §4.5.3.2.7: a server should wait at least 5 minutes for the next command (ms).
const IDLE_TIMEOUT_MS = 5 * 60 * 1000;

const LF = 0x0a;
const CR = 0x0d;
const GO_AHEAD = '354 End data with <CR><LF>.<CR><LF>';
const OK = '250 2.0.0 Ok';
const HOOK_FAILED = '451 4.3.0 Test script failed';
const MAIL_PATH = /^FROM:\s*<([^<>]*)>(.*)$/i;
const RCPT_PATH = /^TO:\s*<([^<>]+)>/i;
const SIZE_PARAM = /(?:^|\s)SIZE=(\d+)/i;

const positive = (code: number): boolean => code >= 200 && code < 400;

/** The server side of one SMTP connection. */
export class Session {
  readonly info: ConnInfo;
  private socket: Socket;
  private mode: Mode = 'command';
  private pending: Buffer | null = null;
  private skippingLongLine = false;
  private refused = false;
  private badCommands = 0;
  private txn: Transaction | null = null;
  private data: DataCollector | null = null;
  private dropAfterBytes = Infinity;
  /** Bytes that followed the dot of a message whose reply is delayed. */
  private afterDelay: Buffer | null = null;
  private finished = false;
  private readonly onData = (chunk: Buffer): void => this.feed(chunk);
  private readonly onIdle = (): void => void this.reply('421 4.4.2 Idle timeout, closing');
  private readonly commands = new Map<string, (arg: string) => void>([
    ['EHLO', (a) => this.hello(a, true)],
    ['HELO', (a) => this.hello(a, false)],
    ['MAIL', (a) => this.mail(a)],
    ['RCPT', (a) => this.rcpt(a)],
    ['DATA', () => this.dataStart()],
    ['RSET', () => this.rset()],
    ['NOOP', () => this.reply(OK)],
    ['QUIT', () => this.quit()],
    ['VRFY', () => this.reply('252 2.5.2 Cannot VRFY user, but will attempt delivery')],
    ['STARTTLS', () => this.startTls()],
  ]);

  constructor(
    private readonly host: SessionHost,
    socket: Socket,
    id: number,
  ) {
    this.socket = socket;
    this.info = {
      id,
      remoteAddress: socket.remoteAddress ?? '',
      remotePort: socket.remotePort ?? 0,
      localAddress: socket.localAddress ?? '',
      tls: false,
      openedAt: Date.now(),
    };
  }

  /** Wires the socket and sends the banner. */
  begin(): void {
    const socket = this.socket;
    socket.on('data', this.onData);
    socket.on('error', () => socket.destroy());
    socket.once('close', () => this.ended());
    socket.setTimeout(IDLE_TIMEOUT_MS, this.onIdle);
    const banner = this.hook((s) => s.onConnect?.(this.info)) ?? `220 ${this.host.hostname} ESMTP`;
    const code = this.run(banner);
    if (code !== 0 && !positive(code)) this.refused = true;
  }

  /** Drops the connection (the receiver is stopping). */
  destroy(): void {
    this.mode = 'closed';
    this.socket.destroy();
  }

  // ---- Input ----

  /** Consumes bytes: command lines, or body bytes while in DATA. */
  private feed(chunk: Buffer): void {
    const socket = this.socket;
    socket.cork();
    try {
      let rest: Buffer | null = chunk;
      while (rest !== null && rest.length > 0) {
        if (this.mode === 'data') rest = this.feedData(rest);
        else if (this.mode === 'command') rest = this.feedLines(rest);
        else rest = null;
      }
    } catch (err) {
      this.host.failed(err);
      this.destroy();
    } finally {
      socket.uncork();
    }
  }

  /** Handles every complete line; returns what follows a DATA go-ahead, else null. */
  private feedLines(chunk: Buffer): Buffer | null {
    const buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = null;
    let start = 0;
    while (this.mode === 'command') {
      const lf = buf.indexOf(LF, start);
      if (lf < 0) return this.keepPartial(buf.subarray(start));
      // Bare LF is taken as a line end too: lenient, as most receivers are.
      const end = lf > start && buf[lf - 1] === CR ? lf - 1 : lf;
      const line = buf.toString('utf8', start, end);
      const bytes = end - start;
      start = lf + 1;
      this.line(line, bytes);
    }
    return this.mode === 'data' ? buf.subarray(start) : null;
  }

  /** Keeps an incomplete line for the next chunk, unless it is already too long. */
  private keepPartial(rest: Buffer): null {
    if (this.skippingLongLine) return null;
    if (rest.length <= MAX_COMMAND_BYTES) {
      this.pending = rest.length > 0 ? Buffer.from(rest) : null;
      return null;
    }
    this.skippingLongLine = true;
    this.badCommand('500 5.5.2 Line too long');
    return null;
  }

  /** One complete command line. */
  private line(text: string, bytes: number): void {
    if (this.skippingLongLine) {
      this.skippingLongLine = false;
      return;
    }
    if (bytes > MAX_COMMAND_BYTES) return this.badCommand('500 5.5.2 Line too long');
    this.host.log(`C: ${text}`);
    const space = text.indexOf(' ');
    const verb = (space < 0 ? text : text.slice(0, space)).toUpperCase();
    const arg = space < 0 ? '' : text.slice(space + 1).trim();
    if (this.refused && verb !== 'QUIT') return void this.reply('503 5.5.1 Bad sequence');
    const handler = this.commands.get(verb);
    if (handler) handler(arg);
    else this.badCommand('500 5.5.2 Command unrecognized');
  }

  /** Body bytes; ends the message at CRLF.CRLF and returns what follows it. */
  private feedData(chunk: Buffer): Buffer | null {
    const data = this.data as DataCollector;
    const end = data.push(chunk);
    if (data.received >= this.dropAfterBytes || (end >= 0 && this.dropAfterBytes < Infinity)) {
      this.host.log(`S: <disconnect after ${data.received} bytes of data>`);
      this.destroy();
      return null;
    }
    if (end < 0) return null;
    this.mode = 'command';
    this.endOfData(data);
    if ((this.mode as Mode) !== 'delaying') return chunk.subarray(end);
    // A delayed reply: what the client sent after the dot waits until the reply is out.
    this.afterDelay = chunk.subarray(end);
    return null;
  }

  // ---- Commands ----

  private hello(name: string, extended: boolean): void {
    if (!name) return void this.reply('501 5.5.4 Syntax: EHLO hostname');
    const fallback = extended ? this.ehloReply(name) : `250 ${this.host.hostname}`;
    const code = this.run(this.hook((s) => s.onEhlo?.(this.info, name)) ?? fallback);
    if (!positive(code)) return;
    this.info.helo = name;
    this.txn = null;
  }

  /** The default EHLO reply with our extensions. */
  private ehloReply(name: string): string {
    const lines = [`250 ${this.host.hostname} Hello ${name}`];
    if (this.host.pipelining) lines.push('PIPELINING');
    lines.push(`SIZE ${this.host.maxMessageBytes}`, '8BITMIME', 'ENHANCEDSTATUSCODES');
    lines.push('SMTPUTF8');
    if (this.host.secureContext && !this.info.tls) lines.push('STARTTLS');
    return lines.join('\n');
  }

  private mail(arg: string): void {
    const path = MAIL_PATH.exec(arg);
    if (!this.info.helo) return void this.reply('503 5.5.1 Error: send HELO/EHLO first');
    if (this.txn) return void this.reply('503 5.5.1 Error: nested MAIL command');
    if (this.host.requireTls && !this.info.tls) {
      return void this.reply('530 5.7.0 Must issue a STARTTLS command first');
    }
    if (!path) return void this.reply('501 5.5.4 Syntax: MAIL FROM:<address>');
    if (Number(SIZE_PARAM.exec(path[2] ?? '')?.[1] ?? 0) > this.host.maxMessageBytes) {
      return void this.reply('552 5.3.4 Message size exceeds fixed limit');
    }
    const from = path[1] ?? '';
    const code = this.run(this.hook((s) => s.onMailFrom?.(this.info, from)) ?? '250 2.1.0 Ok');
    if (positive(code)) this.txn = { from, to: [], accepted: [] };
  }

  private rcpt(arg: string): void {
    const txn = this.txn;
    const path = RCPT_PATH.exec(arg);
    if (!txn) return void this.reply('503 5.5.1 Error: need MAIL command');
    if (!path) return void this.reply('501 5.5.4 Syntax: RCPT TO:<address>');
    if (txn.to.length >= MAX_RECIPIENTS) return void this.reply('452 4.5.3 Too many recipients');
    const to = path[1] ?? '';
    txn.to.push(to);
    const code = this.run(this.hook((s) => s.onRcptTo?.(this.info, to, txn)) ?? '250 2.1.5 Ok');
    if (positive(code)) txn.accepted.push(to);
  }

  private dataStart(): void {
    const txn = this.txn;
    if (!txn) return void this.reply('503 5.5.1 Error: need MAIL command');
    if (txn.accepted.length === 0) return void this.reply('554 5.5.1 Error: no valid recipients');
    const action = this.hook((s) => s.onDataStart?.(this.info, txn)) ?? GO_AHEAD;
    if (typeof action === 'object' && 'disconnectAfterBytes' in action) {
      this.reply(GO_AHEAD);
      return this.enterData(action.disconnectAfterBytes);
    }
    if (this.run(action) === 354) this.enterData(Infinity);
  }

  private enterData(dropAfterBytes: number): void {
    this.mode = 'data';
    this.data = new DataCollector(this.host.maxMessageBytes);
    this.dropAfterBytes = dropAfterBytes;
  }

  /** The body is complete: build the message, ask the script, store it on a 2xx. */
  private endOfData(data: DataCollector): void {
    const txn = this.txn as Transaction;
    this.txn = null;
    this.data = null;
    this.host.log(`C: <${data.received} bytes of data>`);
    if (data.overflowed) return void this.reply('552 5.3.4 Message size exceeds fixed limit');
    const m = this.message(txn, data.body());
    const fallback = `250 2.0.0 Ok: queued as ${m.queueId}`;
    const action = this.hook((s) => s.onMessage?.(this.info, m)) ?? fallback;
    if (typeof action === 'object' && 'delayMs' in action) return this.delayReply(action, m);
    const code = this.run(action);
    if (code >= 200 && code < 300) this.host.store(m);
  }

  /** Answers the end of DATA after a delay, not reading from the client meanwhile. */
  private delayReply(action: { delayMs: number; reply: string }, m: ReceivedMessage): void {
    this.mode = 'delaying';
    this.socket.pause();
    setTimeout(() => {
      if (this.mode !== 'delaying') return; // stopped or closed meanwhile
      this.mode = 'command';
      const code = this.reply(action.reply);
      if (code >= 200 && code < 300) this.host.store(m);
      const rest = this.afterDelay;
      this.afterDelay = null;
      this.socket.resume();
      if (rest && rest.length > 0) this.feed(rest);
    }, action.delayMs);
  }

  private message(txn: Transaction, data: Buffer): ReceivedMessage {
    const { id, remoteAddress, localAddress, tls, helo } = this.info;
    const { from, accepted } = txn;
    const queueId = this.host.nextQueueId();
    return {
      connectionId: id,
      remoteAddress,
      localAddress,
      tls,
      helo,
      from,
      to: accepted,
      data,
      at: Date.now(),
      queueId,
    };
  }

  private rset(): void {
    this.txn = null;
    this.reply(OK);
  }

  private quit(): void {
    this.reply('221 2.0.0 Bye');
    this.close();
  }

  private startTls(): void {
    if (!this.host.secureContext) return void this.reply('502 5.5.1 STARTTLS not offered');
    if (this.info.tls) return void this.reply('503 5.5.1 Error: TLS already active');
    this.reply('220 2.0.0 Ready to start TLS');
    this.upgrade(this.host.secureContext);
  }

  /**
   * Wraps the same socket in TLS. Plaintext that came after STARTTLS is discarded, and the
   * session starts over once secure (RFC 3207 §4.2: forget EHLO and any transaction).
   */
  private upgrade(secureContext: SecureContext): void {
    const raw = this.socket;
    this.mode = 'upgrading';
    this.pending = null;
    raw.removeListener('data', this.onData);
    raw.uncork();
    // Once wrapped, bytes flow through the TLS socket: only its timer sees the activity.
    raw.setTimeout(0);
    const secure = new TLSSocket(raw, { isServer: true, secureContext });
    this.socket = secure;
    secure.setTimeout(IDLE_TIMEOUT_MS, this.onIdle);
    secure.on('data', this.onData);
    secure.on('error', () => secure.destroy());
    secure.once('secure', () => this.secured());
    secure.once('close', () => this.ended());
  }

  private secured(): void {
    this.info.tls = true;
    this.info.helo = undefined;
    this.txn = null;
    this.mode = 'command';
    this.host.log('S: <TLS established>');
    this.host.secured(this.info);
  }

  // ---- Output ----

  /** Performs an action; returns the reply code sent, or 0 when nothing was sent. */
  private run(action: ReceiverAction): number {
    if (typeof action === 'string') return this.reply(action);
    if ('stall' in action) {
      this.mode = 'stalled';
      this.host.log('S: <stalled>');
      return 0;
    }
    if ('delayMs' in action) {
      this.host.failed(new Error('delayMs is only valid from onMessage'));
      return this.reply(action.reply);
    }
    if (!('disconnect' in action)) {
      this.host.failed(new Error('disconnectAfterBytes is only valid from onDataStart'));
    }
    this.host.log('S: <disconnect>');
    this.destroy();
    return 0;
  }

  /** Calls a script hook, turning an exception into a 451 and a recorded error. */
  private hook(
    call: (s: ReceiverScript) => ReceiverAction | undefined,
  ): ReceiverAction | undefined {
    try {
      return call(this.host.script());
    } catch (err) {
      this.host.failed(err);
      return HOOK_FAILED;
    }
  }

  /** Sends a reply; a 421 closes the connection after it (RFC 5321 §3.8). */
  private reply(text: string): number {
    if (this.mode === 'closed') return 0;
    const wire = formatReply(text);
    for (const line of wire.slice(0, -2).split('\r\n')) this.host.log(`S: ${line}`);
    this.socket.write(wire);
    const code = replyCode(text);
    if (code === 421) this.close();
    return code;
  }

  private badCommand(reply: string): void {
    this.badCommands++;
    if (this.badCommands < MAX_BAD_COMMANDS) return void this.reply(reply);
    this.reply('421 4.7.0 Too many errors, closing');
  }

  /** Half-closes after the last reply; the client's FIN (or stop) finishes it. */
  private close(): void {
    this.mode = 'closed';
    this.socket.end();
  }

  /** Called once per connection, when either the plain or the TLS socket closes. */
  private ended(): void {
    if (this.finished) return;
    this.finished = true;
    this.mode = 'closed';
    this.host.closed(this.info);
  }
}
