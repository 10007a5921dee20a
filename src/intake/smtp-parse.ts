// Parsing of command lines: the verb, MAIL/RCPT paths (RFC 5321 §4.1.2) and their parameters.
import { reply } from './smtp-reply.js';
import type { IntakeReply, MailParams } from './smtp-types.js';

// RFC 5321 §4.5.3.1.1: a local part is at most 64 octets.
const MAX_LOCAL_PART = 64;
// RFC 5321 §4.5.3.1.3: a path is at most 256 octets with its angle brackets, so 254 without.
const MAX_ADDRESS = 254;

const CONTROL = /[\x00-\x1f\x7f]/;
const NON_ASCII = /[^\x00-\x7f]/;
const DOMAIN_NAME = /^[^\s"<>()[\]\\,;:@]+$/;
const ADDRESS_LITERAL = /^\[[^\s[\]\\]+\]$/;
const DIGITS = /^\d{1,15}$/;

/** A command line split into its upper-cased verb and the rest, trimmed. */
export function splitCommand(line: string): { verb: string; arg: string } {
  const sp = line.indexOf(' ');
  if (sp < 0) return { verb: line.toUpperCase(), arg: '' };
  return { verb: line.slice(0, sp).toUpperCase(), arg: line.slice(sp + 1).trim() };
}

/** A parsed "FROM:<path> params" or "TO:<path> params", or what is wrong with it. */
export type PathArg =
  | { ok: true; path: string; params: string[] }
  | { ok: false; problem: 'syntax' | 'address'; text: string };

/**
 * Splits the argument of MAIL (keyword FROM) or RCPT (keyword TO). Tolerates a space after the
 * colon and a path without angle brackets, as common clients send them.
 */
export function parsePathArg(arg: string, keyword: 'FROM' | 'TO'): PathArg {
  if (arg.slice(0, keyword.length + 1).toUpperCase() !== `${keyword}:`) {
    return { ok: false, problem: 'syntax', text: `Syntax: ${keyword}:<address>` };
  }
  const rest = arg.slice(keyword.length + 1).trimStart();
  if (!rest.startsWith('<')) {
    const sp = rest.indexOf(' ');
    const path = sp < 0 ? rest : rest.slice(0, sp);
    if (path === '' || path.includes('>')) return badAddress('Bad address syntax');
    return { ok: true, path, params: words(sp < 0 ? '' : rest.slice(sp)) };
  }
  const close = closingBracket(rest);
  if (close < 0) return badAddress('Missing closing angle bracket');
  const after = rest.slice(close + 1);
  if (after !== '' && after[0] !== ' ') return badAddress('Bad address syntax');
  return { ok: true, path: rest.slice(1, close), params: words(after) };
}

/** The index of the '>' that closes the path opened at 0, skipping quoted strings. */
function closingBracket(s: string): number {
  let quoted = false;
  for (let i = 1; i < s.length; i++) {
    const c = s[i];
    if (quoted && c === '\\') i++;
    else if (c === '"') quoted = !quoted;
    else if (!quoted && c === '>') return i;
  }
  return -1;
}

/** Space-separated words, empty ones dropped. */
function words(s: string): string[] {
  return s.split(' ').filter((w) => w !== '');
}

/** An address problem. */
function badAddress(text: string): PathArg {
  return { ok: false, problem: 'address', text };
}

/**
 * Checks a path and returns the mailbox, or an error text. The source route of an old-style
 * path ("@a,@b:user@c") is dropped, as RFC 5321 §4.1.1.3 asks. allowEmpty accepts the null
 * reverse-path "<>"; allowPostmaster accepts a bare "postmaster" (RFC 5321 §4.1.1.3).
 */
export function checkMailbox(
  path: string,
  opts: { allowEmpty: boolean; allowPostmaster: boolean },
): { mailbox: string } | { error: string } {
  const mailbox = withoutSourceRoute(path);
  if (mailbox === '') return opts.allowEmpty ? { mailbox } : { error: 'Empty address' };
  if (CONTROL.test(mailbox)) return { error: 'Control character in address' };
  if (!quotesAreSound(mailbox)) return { error: 'Bad address syntax' };
  const at = mailbox.lastIndexOf('@');
  if (at < 0) {
    const postmaster = opts.allowPostmaster && mailbox.toLowerCase() === 'postmaster';
    return postmaster ? { mailbox } : { error: 'Address lacks a domain' };
  }
  const local = mailbox.slice(0, at);
  if (local === '' || Buffer.byteLength(local) > MAX_LOCAL_PART) {
    return { error: 'Bad local part length' };
  }
  if (Buffer.byteLength(mailbox) > MAX_ADDRESS) return { error: 'Address too long' };
  return isDomain(mailbox.slice(at + 1)) ? { mailbox } : { error: 'Bad domain syntax' };
}

/** The mailbox of a path, without a leading source route. */
function withoutSourceRoute(path: string): string {
  if (!path.startsWith('@')) return path;
  const colon = path.indexOf(':');
  return colon < 0 ? path : path.slice(colon + 1);
}

/** True when quotes are balanced and no space, '<' or '>' stands outside them. */
function quotesAreSound(s: string): boolean {
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quoted && c === '\\') i++;
    else if (c === '"') quoted = !quoted;
    else if (!quoted && (c === ' ' || c === '<' || c === '>')) return false;
  }
  return !quoted;
}

/** A domain name (dots between non-empty labels) or an address literal like [192.0.2.1]. */
function isDomain(d: string): boolean {
  if (ADDRESS_LITERAL.test(d)) return true;
  if (!DOMAIN_NAME.test(d)) return false;
  return !d.startsWith('.') && !d.endsWith('.') && !d.includes('..');
}

/** True when an address needs SMTPUTF8 (RFC 6531 §3.2). */
export function needsUtf8(address: string): boolean {
  return NON_ASCII.test(address);
}

/**
 * The MAIL FROM parameters, or the reply refusing them. allowAuth accepts the AUTH= parameter
 * (RFC 4954 §5), which is then ignored.
 */
export function parseMailParams(
  list: string[],
  allowAuth: boolean,
): { params: MailParams } | { error: IntakeReply } {
  const params: MailParams = { smtputf8: false };
  const seen = new Set<string>();
  for (const word of list) {
    const eq = word.indexOf('=');
    const key = (eq < 0 ? word : word.slice(0, eq)).toUpperCase();
    const value = eq < 0 ? undefined : word.slice(eq + 1);
    if (seen.has(key)) return { error: reply(501, '5.5.4', `Duplicate parameter ${key}`) };
    seen.add(key);
    const error = applyMailParam(params, key, value, allowAuth);
    if (error) return { error };
  }
  return { params };
}

/** Sets one parameter; returns the refusal when it is unknown or malformed. */
function applyMailParam(
  params: MailParams,
  key: string,
  value: string | undefined,
  allowAuth: boolean,
): IntakeReply | undefined {
  if (key === 'SIZE') {
    if (value === undefined || !DIGITS.test(value)) return reply(501, '5.5.4', 'Bad SIZE value');
    params.size = Number(value);
  } else if (key === 'BODY') {
    const body = value?.toUpperCase();
    if (body !== '7BIT' && body !== '8BITMIME') return reply(501, '5.5.4', 'Bad BODY value');
    params.body = body;
  } else if (key === 'SMTPUTF8') {
    if (value !== undefined) return reply(501, '5.5.4', 'SMTPUTF8 takes no value');
    params.smtputf8 = true;
  } else if (key !== 'AUTH' || !allowAuth) {
    return unsupportedParam(key);
  }
  return undefined;
}

/** RFC 5321 §4.1.1.11: parameters not recognized get 555. */
export function unsupportedParam(key: string): IntakeReply {
  return reply(555, '5.5.4', `Unsupported parameter ${key}`);
}
