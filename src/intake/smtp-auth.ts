// SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms.
import type { SessionContext } from './smtp-context.js';
import { reply } from './smtp-reply.js';
import type { IntakeReply } from './smtp-types.js';

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
// The LOGIN prompts "Username:" and "Password:", base64-encoded as clients expect them.
const USERNAME_PROMPT = Buffer.from('Username:').toString('base64');
const PASSWORD_PROMPT = Buffer.from('Password:').toString('base64');

const AUTH_REPLIES = {
  notEnabled: reply(502, '5.5.1', 'Error: authentication not enabled'),
  needEhlo: reply(503, '5.5.1', 'Error: send EHLO first'),
  already: reply(503, '5.5.1', 'Error: already authenticated'),
  inTransaction: reply(503, '5.5.1', 'Error: MAIL transaction in progress'),
  needTls: reply(538, '5.7.11', 'Encryption required for requested authentication mechanism'),
  unknownMechanism: reply(504, '5.5.4', 'Unrecognized authentication type'),
  syntax: reply(501, '5.5.4', 'Syntax: AUTH mechanism [initial-response]'),
  cancelled: reply(501, '5.0.0', 'Authentication cancelled'),
  badBase64: reply(501, '5.5.2', 'Cannot decode response'),
  invalid: reply(535, '5.7.8', 'Authentication credentials invalid'),
  temporary: reply(454, '4.7.0', 'Temporary authentication failure'),
  success: reply(235, '2.7.0', 'Authentication successful'),
} as const;

type Mechanism = (s: SessionContext, initial: string | undefined) => void | Promise<void>;

const MECHANISMS: ReadonlyMap<string, Mechanism> = new Map([
  ['PLAIN', plain],
  ['LOGIN', login],
]);

/** True when AUTH can be used now: a verifier, a mechanism, and TLS or the insecure allowance. */
export function authOffered(s: SessionContext): boolean {
  const o = s.options;
  const channelOk = s.client.tls || o.allowInsecureAuth;
  return o.hooks.onAuth !== undefined && o.authMethods.length > 0 && channelOk;
}

/** AUTH mechanism [initial-response] (RFC 4954 §4). */
export function auth(s: SessionContext, arg: string): void | Promise<void> {
  const refusal = authRefusal(s);
  if (refusal) return s.refuse('auth', refusal);
  const [name = '', initial, ...extra] = arg.split(' ');
  if (name === '' || extra.length > 0) return s.refuse('auth', AUTH_REPLIES.syntax);
  const mechanism = pickMechanism(s, name.toUpperCase());
  if (!mechanism) return s.refuse('auth', AUTH_REPLIES.unknownMechanism);
  return mechanism(s, initial);
}

/** Why AUTH cannot start in this state, if it cannot. */
function authRefusal(s: SessionContext): IntakeReply | undefined {
  const o = s.options;
  if (o.hooks.onAuth === undefined || o.authMethods.length === 0) return AUTH_REPLIES.notEnabled;
  if (!s.client.helo || !s.esmtp) return AUTH_REPLIES.needEhlo;
  if (s.client.user !== undefined) return AUTH_REPLIES.already;
  if (s.transaction) return AUTH_REPLIES.inTransaction;
  if (!s.client.tls && !o.allowInsecureAuth) return AUTH_REPLIES.needTls;
  return undefined;
}

/** The mechanism called name, if configured. */
function pickMechanism(s: SessionContext, name: string): Mechanism | undefined {
  const configured = (s.options.authMethods as string[]).includes(name);
  return configured ? MECHANISMS.get(name) : undefined;
}

/** PLAIN: one response "authzid NUL authcid NUL password", now or after an empty 334. */
function plain(s: SessionContext, initial: string | undefined): void | Promise<void> {
  if (initial !== undefined) return plainResponse(s, initial);
  s.sendPlain({ code: 334, text: '' });
  s.expectLine((line) => plainResponse(s, line));
}

/** Checks a PLAIN response. An authzid other than the user (proxy authorisation) is refused. */
function plainResponse(s: SessionContext, line: string): void | Promise<void> {
  const decoded = decodeResponse(s, line);
  if (decoded === undefined) return;
  const [authzid, user, password, ...extra] = decoded.split('\0');
  if (user === undefined || password === undefined || extra.length > 0) {
    return s.refuse('auth', AUTH_REPLIES.badBase64);
  }
  if (authzid !== '' && authzid !== user) return s.refuse('auth', AUTH_REPLIES.invalid);
  return verify(s, user, password);
}

/** LOGIN: the user name (given with the command or prompted for), then the password. */
function login(s: SessionContext, initial: string | undefined): void {
  if (initial !== undefined) return loginUser(s, initial);
  s.sendPlain({ code: 334, text: USERNAME_PROMPT });
  s.expectLine((line) => loginUser(s, line));
}

/** Takes the LOGIN user name and prompts for the password. */
function loginUser(s: SessionContext, line: string): void {
  const user = decodeResponse(s, line);
  if (user === undefined) return;
  s.sendPlain({ code: 334, text: PASSWORD_PROMPT });
  s.expectLine((next) => loginPassword(s, user, next));
}

/** Takes the LOGIN password. */
function loginPassword(s: SessionContext, user: string, line: string): void | Promise<void> {
  const password = decodeResponse(s, line);
  if (password === undefined) return;
  return verify(s, user, password);
}

/** A client response decoded, or undefined after answering "*" (cancel) or bad base64. */
function decodeResponse(s: SessionContext, line: string): string | undefined {
  const text = line.trim();
  // RFC 4954 §4: "=" stands for an empty initial response.
  if (text === '=') return '';
  if (text !== '*' && BASE64.test(text)) return Buffer.from(text, 'base64').toString('utf8');
  s.refuse('auth', text === '*' ? AUTH_REPLIES.cancelled : AUTH_REPLIES.badBase64);
  return undefined;
}

/** Asks onAuth; a failing hook is a temporary failure (RFC 4954 §6: 454 4.7.0). */
async function verify(s: SessionContext, user: string, password: string): Promise<void> {
  const check = s.options.hooks.onAuth;
  let ok = false;
  try {
    ok = check !== undefined && (await check(s.client, user, password));
  } catch (err) {
    s.log.warn({ err, user }, 'intake onAuth hook failed');
    return s.refuse('auth', AUTH_REPLIES.temporary);
  }
  if (!ok) return s.refuse('auth', AUTH_REPLIES.invalid);
  s.client.user = user;
  s.send(AUTH_REPLIES.success);
}
