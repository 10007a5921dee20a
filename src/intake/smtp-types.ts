// The values the SMTP intake exchanges with the rest of the engine: options, hooks, client facts.

/** A reply the intake sends: code, RFC 3463 enhanced status code, text ("\n" between lines). */
export interface IntakeReply {
  code: number;
  /** "5.7.1"; when absent the intake adds "<class>.0.0" (RFC 3463 §3.1) where one is due. */
  enhanced?: string;
  text: string;
}

/** What the intake knows about one connected client; every hook receives it. */
export interface ClientInfo {
  /** Session id, the key of every log line about this connection. */
  id: string;
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
  /** The EHLO/HELO argument; cleared by STARTTLS (RFC 3207 §4.2). */
  helo?: string;
  tls: boolean;
  /** The authenticated user (RFC 4954). */
  user?: string;
}

/** MAIL FROM parameters: SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8 (RFC 6531). */
export interface MailParams {
  size?: number;
  body?: '7BIT' | '8BITMIME';
  smtputf8: boolean;
}

/** The mail transaction in progress (RFC 5321 §3.3): reverse-path, forward-paths, parameters. */
export interface MailTransaction {
  /** The reverse-path; '' for the null sender <>. */
  from: string;
  recipients: string[];
  params: MailParams;
}

/** Where the engine decides the fate of a client, a sender, a recipient and a message. */
export interface IntakeHooks {
  /** A reply with code >= 400 refuses the client (sent as the greeting, then close). */
  onConnect?(c: ClientInfo): Promise<IntakeReply | undefined> | IntakeReply | undefined;
  /** Checks a user name and password (AUTH PLAIN or LOGIN). */
  onAuth?(c: ClientInfo, user: string, password: string): Promise<boolean> | boolean;
  /** undefined means "250 2.1.0 Ok"; address is '' for <>. */
  onMailFrom(
    c: ClientInfo,
    address: string,
    params: MailParams,
  ): Promise<IntakeReply | undefined> | IntakeReply | undefined;
  /** undefined means "250 2.1.5 Ok"; txn holds the recipients accepted so far. */
  onRcptTo(
    c: ClientInfo,
    address: string,
    txn: { from: string; recipients: string[] },
  ): Promise<IntakeReply | undefined> | IntakeReply | undefined;
  /**
   * Called once the whole message was received (dot-unstuffed, without the final CRLF.CRLF,
   * exactly as sent otherwise). Resolve the final reply; the server writes nothing until then.
   */
  onMessage(c: ClientInfo, txn: MailTransaction, data: Buffer): Promise<IntakeReply>;
  /** Told of every 4xx/5xx the intake sends on its own (syntax, sequence, size...), for logs. */
  onReject?(c: ClientInfo, stage: string, reply: IntakeReply): void;
}

/** The diagnostics sink; a pino logger fits. */
export interface IntakeLog {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** How an intake server listens, what it offers and what it limits. */
export interface IntakeServerOptions {
  /** Our name in the greeting and the EHLO reply. */
  hostname: string;
  /** Bytes of message content (after dot-unstuffing); advertised as SIZE (RFC 1870). */
  maxMessageSize: number;
  /** Recipients per transaction; RFC 5321 §4.5.3.1.8 asks servers to take at least 100. */
  maxRecipients: number;
  /** Simultaneous connections; more are told 421 and closed. */
  maxClients: number;
  /** Key and certificate; STARTTLS (RFC 3207) is offered when present. */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** Advertised when onAuth is given; only after STARTTLS unless allowInsecureAuth. */
  authMethods: ('PLAIN' | 'LOGIN')[];
  allowInsecureAuth: boolean;
  /** Milliseconds to wait for a command; RFC 5321 §4.5.3.2.7 suggests 5 minutes. */
  idleTimeoutMs: number;
  /** Milliseconds to wait for each block of DATA; RFC 5321 §4.5.3.2.5 suggests 3 minutes. */
  dataTimeoutMs?: number;
  hooks: IntakeHooks;
  log?: IntakeLog;
}
