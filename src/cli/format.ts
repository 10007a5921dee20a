/** How the CLI prints status and traces for a person. */
import { formatReply, type SmtpReply } from '../delivery/reply.js';
import type { StoredRecord } from '../records/types.js';

interface StatusDoc {
  hostname: string;
  uptimeSeconds: number;
  counters: Record<string, number>;
  queues: { name: string; recipients: number }[];
  destinations: DestinationDoc[];
}

interface DestinationDoc {
  domain: string;
  state: string;
  ready: number;
  sessions: number;
  heldUntil?: string;
  reason?: string;
}

/** The status document as aligned text. */
export function formatStatus(s: StatusDoc): string {
  const lines = [`engine ${s.hostname}, up ${s.uptimeSeconds}s`, '', 'since start:'];
  for (const [k, v] of Object.entries(s.counters)) lines.push(`  ${k.padEnd(20)} ${v}`);
  lines.push('', 'queues (recipients waiting or in delivery):');
  for (const q of s.queues) lines.push(`  ${q.name.padEnd(20)} ${q.recipients}`);
  if (s.destinations.length > 0) lines.push('', 'destinations (ready in memory, open sessions):');
  for (const d of s.destinations) lines.push(`  ${formatDestination(d)}`);
  return lines.join('\n');
}

function formatDestination(d: DestinationDoc): string {
  const held = d.heldUntil ? ` until ${d.heldUntil}: ${d.reason ?? ''}` : '';
  return `${d.domain.padEnd(28)} ${d.state.padEnd(6)} ${d.ready} ready, ${d.sessions} open${held}`;
}

/** One line per record: time, type, recipient, where, reply. */
export function formatTrace(t: { records: StoredRecord[]; waiting: WaitingDoc[] }): string {
  const lines = t.records.map(formatRecord);
  for (const w of t.waiting) {
    lines.push(`waiting  ${w.id} <${w.address}> attempts=${w.attempts} next=${w.nextAttemptAt}`);
  }
  return lines.join('\n');
}

interface WaitingDoc {
  id: string;
  address: string;
  attempts: number;
  nextAttemptAt: string;
}

function formatRecord(r: StoredRecord): string {
  const head = `${r.at} ${r.type.padEnd(16)}`;
  switch (r.type) {
    case 'Reception':
      return (
        `${head} ${r.messageId} from=<${r.sender}> size=${r.size} via=${r.via}` +
        ` rcpts=${r.recipients.length}`
      );
    case 'Rejected':
      return `${head} ${r.reason} ${reply(r.reply)}`;
    case 'Expiration':
      return `${head} ${r.recipientId} <${r.recipient}> attempts=${r.attempts} ${reply(r.reply)}`;
    default: {
      const where = r.mxHost ? ` mx=${r.mxHost}[${r.mxIp}]` : '';
      const tls = r.tls ? ' tls' : '';
      const what = `${r.recipientId} <${r.recipient}> attempt=${r.attempt}`;
      return `${head} ${what}${where}${tls} ${reply(r.reply)}`;
    }
  }
}

function reply(r: SmtpReply): string {
  return `"${formatReply(r)}"`;
}
