// The SMTP intake server (RFC 5321 with PIPELINING, SIZE, 8BITMIME, SMTPUTF8,
// ENHANCEDSTATUSCODES, STARTTLS and AUTH): accepts connections, enforces the client limit and
// runs one SmtpSession per client. What to accept is decided by the hooks.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { createSecureContext } from 'node:tls';
import type { SecureContext } from 'node:tls';
import { formatReply, reply } from './smtp-reply.js';
import { SmtpSession, clientInfo } from './smtp-session.js';
import type { IntakeLog, IntakeReply, IntakeServerOptions } from './smtp-types.js';

export type {
  ClientInfo,
  IntakeHooks,
  IntakeLog,
  IntakeReply,
  IntakeServerOptions,
  MailParams,
  MailTransaction,
} from './smtp-types.js';

// Default grace for close(): long enough for a message in flight to be committed to the spool
// and answered, short enough for a restart (milliseconds).
const DEFAULT_GRACE_MS = 10_000;
// A client refused for the connection limit gets this long (milliseconds) to read the 421 and
// hang up before we drop it.
const REFUSED_LINGER_MS = 5_000;

const SILENT_LOG: IntakeLog = { debug: () => undefined, warn: () => undefined };

/** An SMTP server for intake: listen(), then close() to stop. */
export class IntakeServer {
  private readonly server: Server;
  private readonly sessions = new Set<SmtpSession>();
  private readonly refused = new Set<Socket>();
  private readonly secureContext: SecureContext | undefined;
  private readonly log: IntakeLog;
  private closed: Promise<void> | undefined;
  private onAllGone: (() => void) | undefined;

  constructor(private readonly options: IntakeServerOptions) {
    this.log = options.log ?? SILENT_LOG;
    this.secureContext = makeSecureContext(options);
    this.server = createServer({ noDelay: true }, (socket) => this.accept(socket));
    this.server.on('error', (err) => this.log.warn({ err }, 'intake server error'));
  }

  /** Connected clients, refused ones not counted. */
  get connections(): number {
    return this.sessions.size;
  }

  /** Starts listening; resolves with the bound address (port 0 picks a free one). */
  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    const listening = once(this.server, 'listening');
    this.server.listen(port, host);
    await listening;
    const address = this.server.address() as AddressInfo;
    this.log.debug({ host: address.address, port: address.port }, 'intake listening');
    return { host: address.address, port: address.port };
  }

  /**
   * Stops accepting, says "421 4.3.2 Service shutting down" to idle clients (the others once
   * their command or message is done) and destroys what is left after graceMs milliseconds.
   */
  async close(graceMs = DEFAULT_GRACE_MS): Promise<void> {
    this.closed ??= this.shutDown(graceMs);
    return this.closed;
  }

  /** The body of close(), run once. */
  private async shutDown(graceMs: number): Promise<void> {
    const allClosed = this.server.listening ? once(this.server, 'close') : undefined;
    this.server.close();
    for (const session of this.sessions) session.shutdown();
    const timer = setTimeout(() => this.destroyAll(), graceMs);
    try {
      await allClosed;
      await this.allGone();
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves once no session or refused socket is left (the server's own 'close' comes first). */
  private async allGone(): Promise<void> {
    if (this.sessions.size + this.refused.size === 0) return;
    await new Promise<void>((resolve) => (this.onAllGone = resolve));
  }

  /** Forgets a closed connection. */
  private forget(connection: SmtpSession | Socket): void {
    if (connection instanceof SmtpSession) this.sessions.delete(connection);
    else this.refused.delete(connection);
    if (this.sessions.size + this.refused.size === 0) this.onAllGone?.();
  }

  /** Drops every connection still open. */
  private destroyAll(): void {
    for (const session of this.sessions) session.destroy();
    for (const socket of this.refused) socket.destroy();
  }

  /** A new connection: a session, or a 421 when the server is full or closing. */
  private accept(socket: Socket): void {
    if (this.closed || this.sessions.size >= this.options.maxClients) return this.refuse(socket);
    const id = newSessionId();
    const session = new SmtpSession(
      socket,
      {
        options: this.options,
        secureContext: this.secureContext,
        log: this.log,
        onClose: (s) => this.forget(s),
      },
      id,
    );
    this.sessions.add(session);
    void session.start();
  }

  /** Tells a client over the limit to come back later and hangs up. */
  private refuse(socket: Socket): void {
    socket.on('error', (err) => this.log.debug({ err }, 'intake refused client error'));
    this.refused.add(socket);
    socket.once('close', () => this.forget(socket));
    socket.setTimeout(REFUSED_LINGER_MS, () => socket.destroy());
    const text = this.closed
      ? reply(421, '4.3.2', `${this.options.hostname} Service shutting down`)
      : reply(421, '4.7.0', `${this.options.hostname} Too many connections, try again later`);
    this.log.debug({ remote: socket.remoteAddress, code: text.enhanced }, 'intake client refused');
    socket.end(formatReply(text, true));
    this.reportRefusal(socket, text);
  }

  /** Tells onReject about a client refused before it had a session. */
  private reportRefusal(socket: Socket, r: IntakeReply): void {
    const hook = this.options.hooks.onReject;
    if (!hook) return;
    try {
      hook(clientInfo(socket, newSessionId()), 'connect', r);
    } catch (err) {
      this.log.warn({ err }, 'intake onReject hook failed');
    }
  }
}

/** A session id for logs: 12 hex digits, random. */
function newSessionId(): string {
  return randomBytes(6).toString('hex');
}

/** The TLS context for STARTTLS, or undefined when TLS is not configured. */
function makeSecureContext(options: IntakeServerOptions): SecureContext | undefined {
  if (!options.tls) return undefined;
  try {
    return createSecureContext({ key: options.tls.key, cert: options.tls.cert });
  } catch (err) {
    throw new Error('intake: tls.key and tls.cert do not form a usable key and certificate', {
      cause: err,
    });
  }
}
