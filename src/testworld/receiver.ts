// A scripted receiving SMTP server on a loopback address, for end-to-end tests, demo and bench.
import { once } from 'node:events';
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import type { SecureContext } from 'node:tls';
import type { ConnInfo, ReceivedMessage, ReceiverScript } from './script.js';
import { Session } from './smtp-session.js';
import type { SessionHost } from './smtp-session.js';
import { testSecureContext } from './tls-cert.js';

export type {
  ConnInfo,
  ReceivedMessage,
  ReceiverAction,
  ReceiverScript,
  Transaction,
} from './script.js';

/** Where a receiver listens and how it behaves. */
export interface ReceiverOptions {
  /** Any address of 127.0.0.0/8 works on Linux, e.g. 127.0.1.7. */
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Name in the banner and the EHLO reply; default 'localhost'. */
  hostname?: string;
  /** Offer STARTTLS with a self-signed certificate. */
  starttls?: boolean;
  /** Answer 530 5.7.0 to MAIL before STARTTLS. */
  requireTls?: boolean;
  /** Advertise PIPELINING (default true). SIZE, 8BITMIME, ENHANCEDSTATUSCODES, SMTPUTF8 always. */
  pipelining?: boolean;
  script?: ReceiverScript;
  /** SIZE limit in bytes; default 50 MiB. Bigger bodies are read, not kept, and get a 552. */
  maxMessageBytes?: number;
  /** For long benchmarks: keep at least the latest n stored messages, at most 2n; default all. */
  retainMessages?: number;
}

/** One connection as the receiver saw it. */
export interface ConnectionRecord {
  id: number;
  remoteAddress: string;
  openedAt: number;
  closedAt?: number;
  tls: boolean;
}

// Big enough for any test message with attachments, small enough to be a real limit (bytes).
const DEFAULT_MAX_MESSAGE_BYTES = 50 * 1024 * 1024;
// The transcript is for debugging a failed test: the last lines are the ones that matter.
const TRANSCRIPT_LINES = 1000;
// Lines of transcript quoted in a waitForMessages timeout error.
const TRANSCRIPT_IN_ERRORS = 20;

/** A waitForMessages call still waiting. */
interface Waiter {
  count: number;
  resolve(): void;
  reject(err: Error): void;
}

/** A scripted receiving SMTP server: stores what it accepts, counts what it sees. */
export class Receiver {
  readonly host: string;
  /** Stored (2xx) messages; see retainMessages. */
  readonly messages: ReceivedMessage[] = [];
  readonly connections: ConnectionRecord[] = [];
  /** Errors thrown by script hooks (and bugs of the receiver itself), for tests to assert on. */
  readonly errors: unknown[] = [];
  private readonly server: Server;
  private readonly sessionHost: SessionHost;
  private readonly sessions = new Map<number, Session>();
  private readonly open = new Map<number, ConnectionRecord>();
  private readonly waiters = new Set<Waiter>();
  private readonly lines = new Ring(TRANSCRIPT_LINES);
  private readonly retain: number;
  private script: ReceiverScript;
  private boundPort = 0;
  private lastConnection = 0;
  private stored = 0;
  private concurrent = 0;
  private peak = 0;

  private constructor(opts: ReceiverOptions, secureContext: SecureContext | undefined) {
    this.host = opts.host;
    this.script = opts.script ?? {};
    this.retain = opts.retainMessages ?? Infinity;
    this.sessionHost = this.makeSessionHost(opts, secureContext);
    this.server = createServer((socket) => this.accept(socket));
  }

  /** Starts listening; rejects when the address or port cannot be bound. */
  static async start(opts: ReceiverOptions): Promise<Receiver> {
    if (opts.requireTls && !opts.starttls) {
      throw new Error('Receiver: requireTls needs starttls: true, or no client could ever send');
    }
    const secureContext = opts.starttls ? await testSecureContext() : undefined;
    const receiver = new Receiver(opts, secureContext);
    await receiver.listen(opts.port);
    return receiver;
  }

  /** The port listened on (the real one when started with port 0). */
  get port(): number {
    return this.boundPort;
  }

  /** The most connections open at the same time so far. */
  get maxConcurrent(): number {
    return this.peak;
  }

  /** Connections open now. */
  get current(): number {
    return this.concurrent;
  }

  /** Messages stored since start, including those no longer retained. */
  get messageCount(): number {
    return this.stored;
  }

  /** The last lines of every conversation, prefixed 'C: ' (client) or 'S: ' (server). */
  get transcript(): string[] {
    return this.lines.toArray();
  }

  /** Changes behaviour live; sessions already open use the new script from their next step. */
  setScript(s: ReceiverScript): void {
    this.script = s;
  }

  /** Resolves once n messages have been stored since start; rejects after timeoutMs. */
  waitForMessages(n: number, timeoutMs: number): Promise<void> {
    if (this.stored >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(this.waitTimeout(n, timeoutMs));
      }, timeoutMs);
      const waiter: Waiter = {
        count: n,
        resolve: () => (clearTimeout(timer), resolve()),
        reject: (err) => (clearTimeout(timer), reject(err)),
      };
      this.waiters.add(waiter);
    });
  }

  /** Every accepted recipient of every retained message. */
  recipients(): string[] {
    return this.messages.flatMap((m) => m.to);
  }

  /** Closes the listener, destroys every connection, fails pending waitForMessages calls. */
  async stop(): Promise<void> {
    const closed = this.server.listening ? once(this.server, 'close') : Promise.resolve();
    this.server.close();
    for (const session of this.sessions.values()) session.destroy();
    for (const w of this.waiters) w.reject(new Error(`Receiver ${this.label()} stopped`));
    this.waiters.clear();
    await closed;
  }

  private async listen(port: number): Promise<void> {
    this.server.listen({ host: this.host, port });
    try {
      await once(this.server, 'listening');
    } catch (err) {
      throw new Error(`Receiver: cannot listen on ${this.host}:${port}`, { cause: err });
    }
    this.boundPort = (this.server.address() as AddressInfo).port;
  }

  private accept(socket: Socket): void {
    const id = ++this.lastConnection;
    const session = new Session(this.sessionHost, socket, id);
    const { remoteAddress, openedAt } = session.info;
    const connection: ConnectionRecord = { id, remoteAddress, openedAt, tls: false };
    this.connections.push(connection);
    this.open.set(id, connection);
    this.sessions.set(id, session);
    this.concurrent++;
    this.peak = Math.max(this.peak, this.concurrent);
    session.begin();
  }

  /** The settings and callbacks the sessions use. */
  private makeSessionHost(opts: ReceiverOptions, secureContext?: SecureContext): SessionHost {
    let queueIds = 0;
    return {
      hostname: opts.hostname ?? 'localhost',
      pipelining: opts.pipelining ?? true,
      requireTls: opts.requireTls ?? false,
      maxMessageBytes: opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      secureContext,
      script: () => this.script,
      log: (line) => this.lines.push(line),
      nextQueueId: () => `T${(++queueIds).toString(16).toUpperCase().padStart(8, '0')}`,
      store: (m) => this.storeMessage(m),
      failed: (err) => void this.errors.push(err),
      secured: (c) => this.connectionSecured(c),
      closed: (c) => this.connectionClosed(c),
    };
  }

  /** Bookkeeping of a closed connection. */
  private connectionClosed(c: ConnInfo): void {
    const record = this.open.get(c.id);
    if (!record) return;
    this.open.delete(c.id);
    this.sessions.delete(c.id);
    record.closedAt = Date.now();
    this.concurrent--;
  }

  private connectionSecured(c: ConnInfo): void {
    const record = this.open.get(c.id);
    if (record) record.tls = true;
  }

  /** Keeps a 2xx-accepted message and wakes the waiters it satisfies. */
  private storeMessage(m: ReceivedMessage): void {
    this.messages.push(m);
    // Trim in batches so that a long benchmark does not pay a shift() per message.
    if (this.messages.length >= 2 * this.retain) {
      this.messages.splice(0, this.messages.length - this.retain);
    }
    this.stored++;
    for (const w of this.waiters) {
      if (this.stored < w.count) continue;
      this.waiters.delete(w);
      w.resolve();
    }
  }

  private waitTimeout(n: number, timeoutMs: number): Error {
    const tail = this.lines.toArray().slice(-TRANSCRIPT_IN_ERRORS).join('\n  ');
    const got = `${this.stored} message(s) stored`;
    return new Error(
      `Receiver ${this.label()}: wanted ${n} within ${timeoutMs} ms, ${got}.\n` +
        `Last transcript lines:\n  ${tail}`,
    );
  }

  private label(): string {
    return `${this.host}:${this.boundPort}`;
  }
}

/** A fixed-size buffer of the latest lines. */
class Ring {
  private readonly items: string[] = [];
  private next = 0;

  constructor(private readonly size: number) {}

  push(item: string): void {
    if (this.items.length < this.size) this.items.push(item);
    else this.items[this.next] = item;
    this.next = (this.next + 1) % this.size;
  }

  /** Oldest first. */
  toArray(): string[] {
    if (this.items.length < this.size) return [...this.items];
    return [...this.items.slice(this.next), ...this.items.slice(0, this.next)];
  }
}
