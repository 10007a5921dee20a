// Reply wire format and the replies the intake sends on its own.
import type { IntakeReply } from './smtp-types.js';

/**
 * The wire form of a reply: "code-" on every line but the last, "code " on the last
 * (RFC 5321 §4.2.1), the enhanced code repeated on each line (RFC 2034 §4). withDefault adds
 * "<class>.0.0" when the reply has none; greetings, EHLO/HELO and 3xx go without.
 */
export function formatReply(reply: IntakeReply, withDefault: boolean): string {
  const enhanced = reply.enhanced ?? (withDefault ? defaultEnhanced(reply.code) : undefined);
  const prefix = enhanced ? ` ${enhanced} ` : ' ';
  if (!reply.text.includes('\n')) return `${reply.code}${prefix}${clean(reply.text)}\r\n`;
  const lines = reply.text.split('\n');
  const last = lines.length - 1;
  const sep = (i: number): string => (i === last ? prefix : `-${prefix.slice(1)}`);
  return lines.map((l, i) => `${reply.code}${sep(i)}${clean(l)}\r\n`).join('');
}

/** "2.0.0", "4.0.0" or "5.0.0" (RFC 3463 §3.1: other or undefined status), none for 1xx/3xx. */
function defaultEnhanced(code: number): string | undefined {
  const cls = Math.floor(code / 100);
  return cls === 2 || cls === 4 || cls === 5 ? `${cls}.0.0` : undefined;
}

/** A reply text without CR or LF, so a hook cannot forge extra reply lines. */
function clean(text: string): string {
  return text.includes('\r') ? text.replace(/\r/g, '') : text;
}

/** Builds a reply value. */
export function reply(code: number, enhanced: string, text: string): IntakeReply {
  return { code, enhanced, text };
}

/** Replies shared by several commands. */
export const REPLIES = {
  ok: reply(250, '2.0.0', 'Ok'),
  mailOk: reply(250, '2.1.0', 'Ok'),
  rcptOk: reply(250, '2.1.5', 'Ok'),
  unrecognized: reply(500, '5.5.2', 'Command unrecognized'),
  nul: reply(500, '5.5.2', 'NUL character in command'),
  lineTooLong: reply(500, '5.5.6', 'Line too long'),
  needHelo: reply(503, '5.5.1', 'Error: send HELO/EHLO first'),
  needMail: reply(503, '5.5.1', 'Error: need MAIL command'),
  inTransaction: reply(503, '5.5.1', 'Error: MAIL transaction in progress'),
  noArguments: reply(501, '5.5.4', 'Syntax error: no arguments allowed'),
  sizeExceeded: reply(552, '5.3.4', 'Message size exceeds fixed maximum message size'),
  localError: reply(451, '4.3.0', 'Error: local error in processing'),
  shuttingDown: reply(421, '4.3.2', 'Service shutting down'),
} as const;
