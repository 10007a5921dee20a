/**
 * What the outbound SMTP client takes and gives back: the timeouts of each wait and their
 * RFC 5321 defaults, the options of one session, a transaction's envelope, and the outcomes
 * (an opening failure, a transaction result) as values carrying an SmtpReply.
 */
import type { SmtpReply } from './reply.js';

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
