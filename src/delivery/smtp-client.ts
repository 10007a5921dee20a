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
 *
 * This file is the client's public face; callers import from here. The parts, each one concept
 * (an arrow reads "imports"; there are no cycles):
 *
 *   smtp-types.ts        options, timeouts and outcome types
 *   smtp-wire.ts         reply parser and the socket reader/writer (-> reply)
 *   smtp-data.ts         the body in DATA wire form: dot-stuffing, CRLF, blocks
 *   smtp-transaction.ts  the transaction state machine (-> wire, data, types)
 *   smtp-session.ts      SmtpSession (-> transaction, wire, types)
 *   smtp-open.ts         openSession and the opening state machine (-> session, wire, types)
 */

/** The values the client takes and returns, and the default timeouts. */
export {
  RFC5321_TIMEOUTS,
  type ClientTimeouts,
  type Envelope,
  type OpenFailure,
  type SessionOptions,
  type TransactionFailure,
  type TransactionResult,
} from './smtp-types.js';
/** Opening a session, and its outcome. */
export { openSession, type OpenResult } from './smtp-open.js';
/** An open session that sends transactions one at a time. */
export { SmtpSession } from './smtp-session.js';
/** The incremental reply parser (exported for its table-driven tests). */
export { ReplyParser } from './smtp-wire.js';
/** The body in DATA wire form (exported for its table-driven tests). */
export { dataBlocks, dataPieces } from './smtp-data.js';
