// The session as the command handlers see it: its state, its replies and its mode switches.
import type {
  ClientInfo,
  IntakeLog,
  IntakeReply,
  IntakeServerOptions,
  MailTransaction,
} from './smtp-types.js';

/** A handler for the next line of an exchange spread over several lines (AUTH). */
export type LineHandler = (line: string) => void | Promise<void>;

/** One SMTP conversation, as commands use it. */
export interface SessionContext {
  readonly options: IntakeServerOptions;
  readonly client: ClientInfo;
  /** Diagnostics, bound to the session id. */
  readonly log: IntakeLog;
  /** True after EHLO, false after HELO: service extensions (and their parameters) are on. */
  esmtp: boolean;
  /** The mail transaction since an accepted MAIL, until the end of DATA, RSET or EHLO. */
  transaction: MailTransaction | undefined;
  /** Queues a reply (enhanced code added if missing). */
  send(reply: IntakeReply): void;
  /** Queues a reply that carries no enhanced code by RFC 2034: greeting, EHLO, HELO, 3xx. */
  sendPlain(reply: IntakeReply): void;
  /** Queues one of our own 4xx/5xx replies and reports it to onReject. */
  refuse(stage: string, reply: IntakeReply): void;
  /** Sends the next line to handler instead of the command table. */
  expectLine(handler: LineHandler): void;
  /** Answers 354 and reads the message that follows. */
  beginData(): void;
  /** Answers 220 and starts the TLS handshake (RFC 3207). */
  beginTls(): void;
  /** Closes the connection once the queued replies are written; later input is ignored. */
  close(): void;
}
