// The vocabulary of receiver scripts: what a scripted receiving SMTP server can be told to do.

/**
 * What the receiver does at one step of the SMTP conversation:
 * - a full reply such as '550 5.1.1 User unknown' ("\n" separates the lines of a multi-line
 *   reply; a reply with code 421 also closes the connection, as RFC 5321 §3.8 says);
 * - `{ stall: true }`: never answer, and ignore everything after (the client must time out);
 * - `{ disconnect: true }`: close the socket at once;
 * - `{ disconnectAfterBytes: n }`: only from onDataStart: answer 354, then drop the
 *   connection once n body bytes have arrived (or at the end of a shorter body);
 * - `{ delayMs, reply }`: only from onMessage: answer `reply` after delayMs milliseconds (a
 *   slow receiver), reading nothing more from the client meanwhile.
 */
export type ReceiverAction =
  | string
  | { stall: true }
  | { disconnect: true }
  | { disconnectAfterBytes: number }
  | { delayMs: number; reply: string };

/** What the receiver knows about one connection. `tls` and `helo` change during the session. */
export interface ConnInfo {
  id: number;
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  tls: boolean;
  helo?: string;
  openedAt: number;
}

/** The open mail transaction: `to` lists every RCPT asked for (the current one included). */
export interface Transaction {
  from: string;
  to: string[];
  accepted: string[];
}

/** A message as the receiver got it. */
export interface ReceivedMessage {
  connectionId: number;
  remoteAddress: string;
  localAddress: string;
  tls: boolean;
  helo?: string;
  from: string;
  /** The accepted recipients. */
  to: string[];
  /** Dot-unstuffed content with CRLF line ends, without the final ".CRLF". */
  data: Buffer;
  /** Milliseconds since the epoch at the end of DATA. */
  at: number;
  /** The id given in the default "250 2.0.0 Ok: queued as <id>" reply. */
  queueId: string;
}

/**
 * Hooks deciding the receiver's replies. A hook that is absent or returns undefined leaves the
 * default reply. A hook that throws makes the receiver answer 451 4.3.0 and record the error.
 */
export interface ReceiverScript {
  /** Default '220 <hostname> ESMTP'. A non-2xx banner leaves only QUIT usable (RFC 5321 §3.1). */
  onConnect?(c: ConnInfo): ReceiverAction | undefined;
  /** Called for EHLO and HELO. Default: 250 with the extensions (EHLO) or a single line. */
  onEhlo?(c: ConnInfo, name: string): ReceiverAction | undefined;
  /** Default '250 2.1.0 Ok'. */
  onMailFrom?(c: ConnInfo, from: string): ReceiverAction | undefined;
  /** Default '250 2.1.5 Ok'. */
  onRcptTo?(c: ConnInfo, to: string, t: Transaction): ReceiverAction | undefined;
  /** Default '354 End data with <CR><LF>.<CR><LF>'. */
  onDataStart?(c: ConnInfo, t: Transaction): ReceiverAction | undefined;
  /** Default '250 2.0.0 Ok: queued as <id>'. Only a 2xx reply stores the message. */
  onMessage?(c: ConnInfo, m: ReceivedMessage): ReceiverAction | undefined;
}

/** The steps of the conversation at which a script can act. */
export type Stage = 'connect' | 'ehlo' | 'mail' | 'rcpt' | 'data' | 'message';

/** The hook called at each stage. */
export const STAGE_HOOK = {
  connect: 'onConnect',
  ehlo: 'onEhlo',
  mail: 'onMailFrom',
  rcpt: 'onRcptTo',
  data: 'onDataStart',
  message: 'onMessage',
} as const satisfies Record<Stage, keyof ReceiverScript>;
