/**
 * One SMTP transaction on an open session, as an explicit state machine with a small handler
 * per reply:
 *
 *   mail -> rcpt (once per recipient) -> data -> body -> dot -> done
 *
 * With PIPELINING (RFC 2920) the whole envelope (MAIL, every RCPT, DATA) leaves in one socket
 * write and the handlers only read the replies in order; without it each handler writes its
 * command first (lock-step). Also here: the checks that refuse an envelope locally before
 * anything is sent, and the MAIL parameters. Every recipient ends with a reply: the server's,
 * or a synthesized 4xx when the connection failed.
 */
import { isAscii } from 'node:buffer';
import { localReply, type SmtpReply } from './reply.js';
import { dataBlocks, END_OF_DATA } from './smtp-data.js';
import type {
  ClientTimeouts,
  Envelope,
  TransactionFailure,
  TransactionResult,
} from './smtp-types.js';
import { isFault, type Wire, type WireFault } from './smtp-wire.js';

/** A reply for every recipient without sending anything, or null when the envelope can go. */
export function localRefusal(
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

type TxnStage = TransactionFailure['stage'];
type TxnState = TxnStage | 'done';

/** The state of one transaction; the handlers below move it along. */
export class Transaction {
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
export async function runTransaction(t: Transaction, pipelined: boolean): Promise<void> {
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
