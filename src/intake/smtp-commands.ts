// One handler per SMTP command (RFC 5321 §4.1.1): each checks the session state, asks the hooks
// where the engine decides, and queues exactly one reply.
import { auth, authOffered } from './smtp-auth.js';
import type { SessionContext } from './smtp-context.js';
import type { DataReader } from './smtp-data.js';
import {
  checkMailbox,
  needsUtf8,
  parseMailParams,
  parsePathArg,
  unsupportedParam,
} from './smtp-parse.js';
import type { PathArg } from './smtp-parse.js';
import { REPLIES, reply } from './smtp-reply.js';
import type { IntakeReply, MailParams, MailTransaction } from './smtp-types.js';

/** Handles one command; arg is the text after the verb, trimmed. */
export type CommandHandler = (s: SessionContext, arg: string) => void | Promise<void>;

const COMMAND_REPLIES = {
  nestedMail: reply(503, '5.5.1', 'Error: nested MAIL command'),
  noRecipients: reply(554, '5.5.1', 'Error: no valid recipients'),
  // RFC 5321 §4.5.3.1.10: 452 for too many recipients; RFC 3463 §3.6: X.5.3.
  tooManyRecipients: reply(452, '4.5.3', 'Too many recipients'),
  // RFC 6531: a non-ASCII address needs the SMTPUTF8 parameter; X.6.7 is from RFC 5248.
  utf8Needed: reply(553, '5.6.7', 'Non-ASCII address needs SMTPUTF8'),
  tlsUnavailable: reply(502, '5.5.1', 'Error: command not implemented'),
  tlsActive: reply(503, '5.5.1', 'Error: TLS already active'),
  vrfy: reply(252, '2.5.0', 'Cannot VRFY user, but will accept message and attempt delivery'),
  help: reply(214, '2.0.0', 'Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP'),
  bye: reply(221, '2.0.0', 'Bye'),
} as const;

/** EHLO: resets the session and lists the service extensions offered now (§4.1.1.1). */
function ehlo(s: SessionContext, arg: string): void {
  if (arg === '') return s.refuse('ehlo', reply(501, '5.5.4', 'Syntax: EHLO hostname'));
  hello(s, arg, true);
  s.sendPlain({ code: 250, text: [s.options.hostname, ...extensions(s)].join('\n') });
}

/** HELO: resets the session, without service extensions. */
function helo(s: SessionContext, arg: string): void {
  if (arg === '') return s.refuse('helo', reply(501, '5.5.4', 'Syntax: HELO hostname'));
  hello(s, arg, false);
  s.sendPlain({ code: 250, text: s.options.hostname });
}

/** Records the client's name; like RSET, EHLO and HELO end any transaction (§4.1.4). */
function hello(s: SessionContext, name: string, esmtp: boolean): void {
  s.client.helo = name;
  s.esmtp = esmtp;
  s.transaction = undefined;
}

/** The EHLO keywords: RFC 2920, 1870, 6152, 6531, 2034, then 3207 and 4954 when usable now. */
function extensions(s: SessionContext): string[] {
  const o = s.options;
  const list = ['PIPELINING', `SIZE ${o.maxMessageSize}`, '8BITMIME', 'SMTPUTF8'];
  list.push('ENHANCEDSTATUSCODES');
  if (o.tls && !s.client.tls) list.push('STARTTLS');
  if (authOffered(s)) list.push(`AUTH ${o.authMethods.join(' ')}`);
  return list;
}

/** MAIL FROM:<reverse-path> [parameters]: opens a transaction if onMailFrom agrees. */
async function mail(s: SessionContext, arg: string): Promise<void> {
  if (!s.client.helo) return s.refuse('mail', REPLIES.needHelo);
  if (s.transaction) return s.refuse('mail', COMMAND_REPLIES.nestedMail);
  const sender = parseSender(s, arg);
  if ('error' in sender) return s.refuse('mail', sender.error);
  const answer = await s.options.hooks.onMailFrom(s.client, sender.address, sender.params);
  if (answer && answer.code >= 400) return s.send(answer);
  s.transaction = { from: sender.address, recipients: [], params: sender.params };
  s.send(answer ?? REPLIES.mailOk);
}

/** The sender and parameters of MAIL, or the reply refusing them. */
function parseSender(
  s: SessionContext,
  arg: string,
): { address: string; params: MailParams } | { error: IntakeReply } {
  const parsed = parsePathArg(arg, 'FROM');
  if (!parsed.ok) return { error: pathError(parsed, '5.1.7') };
  const box = checkMailbox(parsed.path, { allowEmpty: true, allowPostmaster: false });
  if ('error' in box) return { error: reply(501, '5.1.7', box.error) };
  const found = mailParams(s, parsed.params);
  if ('error' in found) return found;
  if ((found.params.size ?? 0) > s.options.maxMessageSize) return { error: REPLIES.sizeExceeded };
  if (!found.params.smtputf8 && needsUtf8(box.mailbox)) {
    return { error: COMMAND_REPLIES.utf8Needed };
  }
  return { address: box.mailbox, params: found.params };
}

/** MAIL parameters; after HELO there are none to give (RFC 1869 §4.1.2). */
function mailParams(s: SessionContext, list: string[]): ReturnType<typeof parseMailParams> {
  const first = list[0];
  if (!s.esmtp && first !== undefined) return { error: unsupportedParam(paramName(first)) };
  return parseMailParams(list, s.options.hooks.onAuth !== undefined);
}

/** RCPT TO:<forward-path>: adds a recipient if onRcptTo agrees (§4.1.1.3). */
async function rcpt(s: SessionContext, arg: string): Promise<void> {
  const txn = s.transaction;
  if (!txn) return s.refuse('rcpt', REPLIES.needMail);
  const recipient = parseRecipient(txn, arg);
  if ('error' in recipient) return s.refuse('rcpt', recipient.error);
  if (txn.recipients.length >= s.options.maxRecipients) {
    return s.refuse('rcpt', COMMAND_REPLIES.tooManyRecipients);
  }
  const sofar = { from: txn.from, recipients: [...txn.recipients] };
  const answer = await s.options.hooks.onRcptTo(s.client, recipient.address, sofar);
  if (answer && answer.code >= 400) return s.send(answer);
  txn.recipients.push(recipient.address);
  s.send(answer ?? REPLIES.rcptOk);
}

/** The recipient of RCPT, or the reply refusing it. No RCPT parameter is offered (no DSN). */
function parseRecipient(
  txn: MailTransaction,
  arg: string,
): { address: string } | { error: IntakeReply } {
  const parsed = parsePathArg(arg, 'TO');
  if (!parsed.ok) return { error: pathError(parsed, '5.1.3') };
  const first = parsed.params[0];
  if (first !== undefined) return { error: unsupportedParam(paramName(first)) };
  const box = checkMailbox(parsed.path, { allowEmpty: false, allowPostmaster: true });
  if ('error' in box) return { error: reply(501, '5.1.3', box.error) };
  if (!txn.params.smtputf8 && needsUtf8(box.mailbox)) {
    return { error: COMMAND_REPLIES.utf8Needed };
  }
  return { address: box.mailbox };
}

/** 501 for a malformed MAIL or RCPT argument: X.5.4 for syntax, the given code for the address. */
function pathError(parsed: PathArg & { ok: false }, addressCode: string): IntakeReply {
  return reply(501, parsed.problem === 'syntax' ? '5.5.4' : addressCode, parsed.text);
}

/** The upper-cased keyword of "KEY=value". */
function paramName(word: string): string {
  const eq = word.indexOf('=');
  return (eq < 0 ? word : word.slice(0, eq)).toUpperCase();
}

/** DATA: 354 and the message follows, once there is at least one recipient (§4.1.1.4). */
function data(s: SessionContext, arg: string): void {
  if (arg !== '') return s.refuse('data', REPLIES.noArguments);
  if (!s.transaction) return s.refuse('data', REPLIES.needMail);
  if (s.transaction.recipients.length === 0) {
    return s.refuse('data', COMMAND_REPLIES.noRecipients);
  }
  s.beginData();
}

/** The end of DATA: the final reply; the transaction ends whatever it says (§4.1.1.4). */
export async function endOfData(s: SessionContext, reader: DataReader): Promise<void> {
  const txn = s.transaction;
  s.transaction = undefined;
  if (!txn) throw new Error('intake: end of DATA outside a mail transaction');
  if (reader.overflowed) return s.refuse('data', REPLIES.sizeExceeded);
  s.send(await s.options.hooks.onMessage(s.client, txn, reader.content()));
}

/** RSET: ends the transaction (§4.1.1.5). */
function rset(s: SessionContext): void {
  s.transaction = undefined;
  s.send(REPLIES.ok);
}

/** NOOP: any argument is ignored (§4.1.1.9). */
function noop(s: SessionContext): void {
  s.send(REPLIES.ok);
}

/** VRFY: we never confirm or deny mailboxes, as §3.5.3 allows with 252. */
function vrfy(s: SessionContext, arg: string): void {
  if (arg === '') return s.refuse('vrfy', reply(501, '5.5.4', 'Syntax: VRFY address'));
  s.send(COMMAND_REPLIES.vrfy);
}

/** HELP (§4.1.1.8). */
function help(s: SessionContext): void {
  s.send(COMMAND_REPLIES.help);
}

/** QUIT: 221 and close (§4.1.1.10). */
function quit(s: SessionContext): void {
  s.send(COMMAND_REPLIES.bye);
  s.close();
}

/** STARTTLS (RFC 3207 §4): only once, without arguments, outside a transaction. */
function starttls(s: SessionContext, arg: string): void {
  if (!s.options.tls) return s.refuse('starttls', COMMAND_REPLIES.tlsUnavailable);
  if (s.client.tls) return s.refuse('starttls', COMMAND_REPLIES.tlsActive);
  if (arg !== '') return s.refuse('starttls', REPLIES.noArguments);
  if (s.transaction) return s.refuse('starttls', REPLIES.inTransaction);
  s.beginTls();
}

/** The command table, by upper-cased verb. */
export const COMMANDS: ReadonlyMap<string, CommandHandler> = new Map<string, CommandHandler>([
  ['EHLO', ehlo],
  ['HELO', helo],
  ['STARTTLS', starttls],
  ['AUTH', auth],
  ['MAIL', mail],
  ['RCPT', rcpt],
  ['DATA', data],
  ['RSET', rset],
  ['NOOP', noop],
  ['QUIT', quit],
  ['VRFY', vrfy],
  ['HELP', help],
]);
