/**
 * SMTP intake: our protocol server (smtp-server.ts) with the intake policy as its hooks.
 * Relaying is allowed only for authenticated users and the configured networks; anyone else
 * gets 554 5.7.1 at RCPT and nothing is queued. The 250 after DATA is sent only once the
 * message is durable.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { addressProblem } from './addresses.js';
import { refusalReply, type Intake } from './intake.js';
import {
  IntakeServer,
  type ClientInfo,
  type IntakeHooks,
  type IntakeReply,
  type MailParams,
} from './smtp-server.js';
import type { TlsMaterial } from './tls.js';

const RELAY_DENIED = { code: 554, enhanced: '5.7.1', text: 'Relay access denied' };

/** Builds the SMTP intake server for an engine. */
export function createSmtpIntake(
  config: Config,
  intake: Intake,
  tls: TlsMaterial,
  log: Logger,
  onLatency?: (seconds: number) => void,
): IntakeServer {
  const hooks: IntakeHooks = {
    onAuth: (_c, user, password) => checkUser(config.smtp.users, user, password),
    onMailFrom: (_c, address) => mailFromProblem(address),
    onRcptTo: (c, address) => rcptToProblem(intake, c, address),
    onMessage: async (c, txn, data) => {
      const started = performance.now();
      const reply = await acceptMessage(intake, c, txn, data);
      onLatency?.((performance.now() - started) / 1000);
      return reply;
    },
    onReject: (c, stage, reply) => log.debug({ client: c.remoteAddress, stage, reply }, 'refused'),
  };
  return new IntakeServer({
    hostname: config.hostname,
    maxMessageSize: config.smtp.maxMessageSize,
    maxRecipients: config.smtp.maxRecipients,
    maxClients: config.smtp.maxClients,
    tls: { key: tls.key, cert: tls.cert },
    authMethods: config.smtp.users.length > 0 ? ['PLAIN', 'LOGIN'] : [],
    // Passwords only travel encrypted, except from the networks that may relay anyway.
    allowInsecureAuth: false,
    idleTimeoutMs: config.smtp.socketTimeout,
    hooks,
    log,
  });
}

function mailFromProblem(address: string): IntakeReply | undefined {
  if (address === '') return undefined; // the null sender <> (bounces, DSNs)
  const problem = addressProblem(address);
  return problem
    ? { code: 501, enhanced: '5.1.7', text: `Bad sender address: ${problem}` }
    : undefined;
}

function rcptToProblem(intake: Intake, c: ClientInfo, address: string): IntakeReply | undefined {
  const problem = addressProblem(address);
  if (problem) return { code: 501, enhanced: '5.1.3', text: `Bad recipient address: ${problem}` };
  if (intake.mayRelay(c.remoteAddress, c.user)) {
    const s = intake.suppressed(address);
    if (!s) return undefined;
    intake.noteSuppressed(address, s, 'smtp');
    return {
      code: 550,
      enhanced: '5.7.1',
      text: `<${address}> is on the suppression list (${s.reason})`,
    };
  }
  intake.rejected({
    via: 'smtp',
    recipient: address,
    reason: 'relay-denied',
    reply: refusalReply(RELAY_DENIED),
    client: { ip: c.remoteAddress },
  });
  return RELAY_DENIED;
}

async function acceptMessage(
  intake: Intake,
  c: ClientInfo,
  txn: { from: string; recipients: string[]; params: MailParams },
  data: Buffer,
): Promise<IntakeReply> {
  const [result] = await intake.offer([
    {
      sender: txn.from,
      recipients: txn.recipients,
      raw: data,
      via: 'smtp',
      client: { ip: c.remoteAddress, user: c.user, helo: c.helo, tls: c.tls },
    },
  ]);
  if (result?.ok)
    return { code: 250, enhanced: '2.0.0', text: `Ok: queued as ${result.accepted.messageId}` };
  const refusal = result!.refusal;
  intake.rejected({
    via: 'smtp',
    sender: txn.from,
    reason: refusal.reason,
    reply: refusalReply(refusal),
    client: { ip: c.remoteAddress, user: c.user },
  });
  return refusal;
}

/** Compares a user's password in constant time. */
function checkUser(users: Config['smtp']['users'], name: string, password: string): boolean {
  const user = users.find((u) => u.name === name);
  if (!user) return false;
  const a = Buffer.from(user.password);
  const b = Buffer.from(password);
  return a.length === b.length && timingSafeEqual(a, b);
}
