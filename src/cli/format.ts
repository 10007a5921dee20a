/** How the CLI prints status and traces for a person. */
import { formatReply, type SmtpReply } from '../delivery/reply.js';
import type { StoredRecord } from '../records/types.js';

interface StatusDoc {
  hostname: string;
  uptimeSeconds: number;
  counters: Record<string, number>;
  queues: QueueDoc[];
  readyQueues: ReadyQueueDoc[];
}

/** A queue as GET /api/v1/queues gives it. */
export interface QueueDoc {
  name: string;
  weight: number;
  pool: string;
  recipients: number;
  inMemory: number;
  state: string;
  reason: string | null;
}

/** A ready queue as GET /api/v1/ready-queues gives it. */
export interface ReadyQueueDoc {
  source: string;
  site: string;
  state: string;
  ready: number;
  sessions: number;
  until?: string;
  reason: string | null;
  limits: { maxConnections: number; messageRate: string | null };
}

/** The status document as aligned text. */
export function formatStatus(s: StatusDoc): string {
  const lines = [`engine ${s.hostname}, up ${s.uptimeSeconds}s`, '', 'since start:'];
  for (const [k, v] of Object.entries(s.counters)) lines.push(`  ${k.padEnd(20)} ${v}`);
  lines.push('', formatQueues(s.queues));
  if (s.readyQueues.length > 0) lines.push('', formatReadyQueues(s.readyQueues));
  return lines.join('\n');
}

/** Queues as a table: name, state, weight, pool, recipients, in memory, reason. */
export function formatQueues(qs: QueueDoc[]): string {
  const head = `${'queue'.padEnd(16)} ${'state'.padEnd(7)} weight pool         recipients in-memory`;
  const rows = qs.map(
    (q) =>
      `${q.name.padEnd(16)} ${q.state.padEnd(7)} ${String(q.weight).padStart(6)} ` +
      `${q.pool.padEnd(12)} ${String(q.recipients).padStart(10)} ` +
      `${String(q.inMemory).padStart(9)}` +
      (q.reason ? `  ${q.reason}` : ''),
  );
  return [head, ...rows].join('\n');
}

/** Ready queues as a table, each with the reason for its state. */
export function formatReadyQueues(rs: ReadyQueueDoc[]): string {
  const head = `${'source'.padEnd(12)} ${'site'.padEnd(32)} ${'state'.padEnd(9)} ready open limits`;
  const rows = rs.map((r) => {
    const limits = `${r.limits.maxConnections} conn${r.limits.messageRate ? `, ${r.limits.messageRate}` : ''}`;
    const until = r.until ? ` until ${r.until}` : '';
    const why = r.reason ? `\n${' '.repeat(13)}${r.reason}${until}` : '';
    return (
      `${r.source.padEnd(12)} ${r.site.padEnd(32)} ${r.state.padEnd(9)} ` +
      `${String(r.ready).padStart(5)} ${String(r.sessions).padStart(4)} ${limits}${why}`
    );
  });
  return [head, ...rows].join('\n');
}

/** A pause as GET /api/v1/pauses gives it. */
export interface PauseDoc {
  kind: string;
  name: string;
  since: string;
}

/** A response-rule action as GET /api/v1/actions gives it. */
export interface ActionDoc {
  id: string;
  kind: string;
  source: string;
  site: string;
  rule: string;
  until: string;
  hits: number;
  reason: string;
}

/** Pauses, one a line: kind, name, since when. */
export function formatPauses(ps: PauseDoc[]): string {
  if (ps.length === 0) return 'nothing paused';
  return ps.map((p) => `${p.kind.padEnd(7)} ${p.name.padEnd(40)} since ${p.since}`).join('\n');
}

/** Actions in force, each with its id (for `actions lift`) and the reason. */
export function formatActions(as: ActionDoc[]): string {
  if (as.length === 0) return 'no action in force';
  return as
    .map(
      (a) =>
        `${a.id}  ${a.kind.padEnd(14)} source=${a.source} site=${a.site} until ${a.until}` +
        ` hits=${a.hits}\n  ${a.reason}`,
    )
    .join('\n');
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
    case 'RuleTriggered':
      return `${head} <${r.recipient}> rule ${r.rule}: ${r.action}${r.tag ? ` ${r.tag}` : ''} after ${r.count}`;
    case 'Suppressed': {
      const why = `${r.suppression.reason} since ${r.suppression.since}`;
      return `${head} ${r.recipientId ?? '-'} <${r.recipient}> ${r.stage}: suppressed (${why})`;
    }
    case 'AdminAction': {
      const to = r.to ? ` to=${[r.to.queue, r.to.pool].filter(Boolean).join('/')}` : '';
      return `${head} ${r.recipientId} <${r.recipient}> ${r.action}${to} "${r.reason}"`;
    }
    case 'AsyncBounce': {
      const status = [r.status, r.diagnostic].filter(Boolean).join(' ');
      const cls = `${r.bounce.category}/${r.bounce.class}`;
      const what = `${r.action} (${r.format}, ${cls})`;
      return `${head} ${r.recipientId} <${r.recipient}> ${what} "${status}"`;
    }
    case 'Complaint':
      return `${head} ${r.recipientId} <${r.recipient}> ${r.feedbackType} by ${r.reportedBy ?? '-'}`;
    default: {
      const where = r.mxHost ? ` mx=${r.mxHost}[${r.mxIp}]` : '';
      const via = r.source ? ` source=${r.source}` : '';
      const rule = r.rule ? ` rule=${r.rule.name}:${r.rule.action}` : '';
      const tls = r.tls ? ' tls' : '';
      const what = `${r.recipientId} <${r.recipient}> attempt=${r.attempt}`;
      return `${head} ${what}${via}${where}${tls}${rule} ${reply(r.reply)}`;
    }
  }
}

function reply(r: SmtpReply): string {
  return `"${formatReply(r)}"`;
}
