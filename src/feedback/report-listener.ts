/**
 * The bounce listener: an SMTP server (our intake protocol server with its own hooks) that
 * takes mail for the bounce domains only. A recipient must be a signed return path that
 * verifies, or one of the configured feedback-loop mailboxes; anything else is refused at
 * RCPT, so the listener never relays and a forged return path is turned away. A report is
 * answered 250 only once its records are durable; if the store cannot write, 451 makes the
 * reporting server try again later.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { ReturnPathClaim, ReturnPaths } from '../bounces/return-path.js';
import { addressProblem } from '../intake/addresses.js';
import { IntakeServer, type IntakeHooks, type IntakeReply } from '../intake/smtp-server.js';
import type { TlsMaterial } from '../intake/tls.js';
import type { ReportOutcome, Reports } from './reports.js';

/** Builds the bounce listener. `onReport` is told what became of every report taken. */
export function createReportListener(
  config: Config,
  returnPaths: ReturnPaths,
  reports: Reports,
  tls: TlsMaterial,
  log: Logger,
  onReport: (o: ReportOutcome) => void,
): IntakeServer {
  const mailboxes = new Set(config.bounces.mailboxes.map((m) => m.toLowerCase()));
  const hooks: IntakeHooks = {
    onMailFrom: (_c, address) => {
      if (address === '') return undefined; // DSNs come from the null sender
      const problem = addressProblem(address);
      return problem ? { code: 501, enhanced: '5.1.7', text: `Bad sender: ${problem}` } : undefined;
    },
    onRcptTo: (_c, address) => recipientProblem(returnPaths, mailboxes, address),
    onMessage: async (c, txn, data): Promise<IntakeReply> => {
      const claims = txn.recipients
        .map((r) => returnPaths.verify(r))
        .filter((x): x is ReturnPathClaim => x !== null);
      try {
        const outcome = await reports.take(data, claims);
        onReport(outcome);
        log.debug(
          { client: c.remoteAddress, kind: outcome.analysis.kind, ignored: outcome.ignored },
          'report taken',
        );
        const what = outcome.ignored ?? `${outcome.records.length} record(s)`;
        return { code: 250, enhanced: '2.6.0', text: `Ok: ${outcome.analysis.kind}, ${what}` };
      } catch (err) {
        log.error({ err, client: c.remoteAddress }, 'report could not be stored');
        return { code: 451, enhanced: '4.3.0', text: 'Report not stored; try again later' };
      }
    },
    onReject: (c, stage, reply) => log.debug({ client: c.remoteAddress, stage, reply }, 'refused'),
  };
  return new IntakeServer({
    hostname: config.hostname,
    maxMessageSize: config.bounces.maxMessageSize,
    maxRecipients: 100,
    maxClients: config.bounces.maxClients,
    tls: { key: tls.key, cert: tls.cert },
    authMethods: [],
    allowInsecureAuth: false,
    idleTimeoutMs: config.smtp.socketTimeout,
    hooks,
    log,
  });
}

/** Why a recipient is refused: not our domain (no relaying), or not a valid return path. */
function recipientProblem(
  returnPaths: ReturnPaths,
  mailboxes: Set<string>,
  address: string,
): IntakeReply | undefined {
  const at = address.lastIndexOf('@');
  if (at < 0) return { code: 501, enhanced: '5.1.3', text: 'Bad recipient address' };
  if (!returnPaths.accepts(address.slice(at + 1))) {
    return { code: 550, enhanced: '5.7.1', text: 'Relay access denied: not a bounce domain' };
  }
  if (returnPaths.verify(address) || mailboxes.has(address.slice(0, at).toLowerCase())) {
    return undefined;
  }
  return { code: 550, enhanced: '5.1.1', text: `<${address}>: no such return path` };
}
