/**
 * Delivery statistics for operators: outcomes counted per hour, destination domain, site and
 * bounce category, kept in the store in the same transaction as the records they count (so
 * they never disagree with them), and summed on demand over any of those dimensions.
 */
import type { Statement } from 'better-sqlite3';
import type { Db } from '../spool/store.js';
import { isUserComplaint, type GridpostRecord } from './types.js';

export const OUTCOMES = [
  'delivered',
  'deferred',
  'bounced',
  'expired',
  'suppressed',
  'complained',
] as const;
export type OutcomeName = (typeof OUTCOMES)[number];
export const DIMENSIONS = ['hour', 'domain', 'site', 'category'] as const;
export type Dimension = (typeof DIMENSIONS)[number];

const OUTCOME_OF: Partial<Record<GridpostRecord['type'], OutcomeName>> = {
  Delivery: 'delivered',
  TransientFailure: 'deferred',
  Bounce: 'bounced',
  Expiration: 'expired',
  Suppressed: 'suppressed',
  Complaint: 'complained',
};

const HOUR_MS = 3_600_000;

/** What GET /api/v1/stats asks for. */
export interface StatsQuery {
  /** Epoch ms, inclusive / exclusive. */
  from: number;
  to: number;
  by: Dimension[];
  domain?: string;
  site?: string;
}

/** One row of the answer: the dimensions asked for, and a count per outcome. */
export type StatsRow = Partial<Record<Dimension, string>> & Record<OutcomeName, number>;

/** Counts outcomes into hourly buckets and sums them. */
export class Stats {
  private readonly bump: Statement;

  constructor(private readonly db: Db) {
    db.exec(`CREATE TABLE IF NOT EXISTS stats (hour INTEGER NOT NULL, domain TEXT NOT NULL,
      site TEXT NOT NULL, category TEXT NOT NULL, outcome TEXT NOT NULL, n INTEGER NOT NULL,
      PRIMARY KEY (hour, domain, site, category, outcome)) WITHOUT ROWID`);
    this.bump = db.prepare(`INSERT INTO stats (hour, domain, site, category, outcome, n)
      VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT DO UPDATE SET n = n + 1`);
  }

  /** Counts a record; call inside the transaction that stores it. */
  count(r: GridpostRecord): void {
    // A DSN that comes back later is a bounce of a recipient counted as delivered before.
    // Only a recipient's complaint counts as complained (not an auth-failure report).
    const outcome =
      r.type === 'AsyncBounce'
        ? r.action === 'failed'
          ? 'bounced'
          : null
        : r.type === 'Complaint' && !isUserComplaint(r)
          ? null
          : OUTCOME_OF[r.type];
    if (!outcome || !('domain' in r)) return;
    const hour = Math.floor(Date.parse(r.at) / HOUR_MS) * HOUR_MS;
    const site = 'site' in r && r.site ? r.site : '';
    const category = 'bounce' in r && r.bounce ? r.bounce.category : '';
    this.bump.run(hour, r.domain, site, category, outcome);
  }

  /** Sums the counts over the range, grouped by the dimensions asked for. */
  query(q: StatsQuery): StatsRow[] {
    const where = ['hour >= ?', 'hour < ?'];
    const args: unknown[] = [Math.floor(q.from / HOUR_MS) * HOUR_MS, q.to];
    if (q.domain) {
      where.push('domain = ?');
      args.push(q.domain.toLowerCase());
    }
    if (q.site) {
      where.push('site = ?');
      args.push(q.site);
    }
    const group = q.by.length ? `GROUP BY ${q.by.join(', ')}` : '';
    const sums = OUTCOMES.map((o) => `SUM(CASE WHEN outcome = '${o}' THEN n ELSE 0 END) AS ${o}`);
    const cols = [...q.by, ...sums].join(', ');
    const order = q.by.length ? `ORDER BY ${q.by.join(', ')}` : '';
    const sql = `SELECT ${cols} FROM stats WHERE ${where.join(' AND ')} ${group} ${order}`;
    const rows = this.db.prepare(sql).all(...args) as Record<string, number | string | null>[];
    return rows
      .filter((row) => OUTCOMES.some((o) => Number(row[o]) > 0))
      .map((row) => toRow(row, q.by));
  }
}

function toRow(row: Record<string, number | string | null>, by: Dimension[]): StatsRow {
  const out: Record<string, string | number> = {};
  for (const d of by) {
    out[d] = d === 'hour' ? new Date(Number(row[d])).toISOString() : String(row[d] ?? '');
  }
  for (const o of OUTCOMES) out[o] = Number(row[o] ?? 0);
  return out as StatsRow;
}
