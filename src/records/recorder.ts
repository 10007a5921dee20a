/**
 * The recorder: stores records inside the spool's transactions, then publishes them (accounting
 * files, counters, listeners) once those transactions committed, and answers queries.
 */
import type { Statement } from 'better-sqlite3';
import type { Db } from '../spool/store.js';
import type { Journal } from './journal.js';
import { Stats, type StatsQuery, type StatsRow } from './stats.js';
import type { GridpostRecord, StoredRecord } from './types.js';

type Listener = (records: StoredRecord[]) => void;
type InsertHook = (record: StoredRecord) => void;

/** What GET /api/v1/events asks for. */
export interface EventQuery {
  after: number;
  limit: number;
  types?: string[];
  domain?: string;
  messageId?: string;
}

/** Writes, publishes and queries records. */
export class Recorder {
  private readonly insertStmt: Statement;
  private readonly byMessage: Statement;
  private readonly byRecipient: Statement;
  private readonly pruneStmt: Statement;
  private readonly listeners: Listener[] = [];
  private readonly insertHooks: InsertHook[] = [];
  private readonly db: Db;
  /**
   * The highest sequence number that is durable and published. Readers of the event cursor
   * see nothing above it, so a record can never be seen and then lost to a power cut (and
   * its number reused). Commits are published in order, so every number below it is durable.
   */
  private durableSeq: number;
  private readonly stats: Stats;

  constructor(
    db: Db,
    private readonly journal: Journal,
  ) {
    this.insertStmt = db.prepare(
      'INSERT INTO records (at, type, message_id, recipient, json) VALUES (?, ?, ?, ?, ?)',
    );
    this.byMessage = db.prepare('SELECT seq, json FROM records WHERE message_id = ? ORDER BY seq');
    this.byRecipient = db.prepare(
      'SELECT seq, json FROM records WHERE recipient = ? ORDER BY seq LIMIT ?',
    );
    this.pruneStmt = db.prepare(
      'DELETE FROM records WHERE seq IN (SELECT seq FROM records WHERE at < ? AND seq <= ? LIMIT ?)',
    );
    this.db = db;
    this.stats = new Stats(db);
    const row = db.prepare('SELECT MAX(seq) AS seq FROM records').get() as { seq: number | null };
    this.durableSeq = row.seq ?? 0;
  }

  /**
   * Stores a record; call inside a committer write (the statement runs on the store's one
   * connection, inside the write's transaction). Returns it with its sequence number.
   */
  insert(record: GridpostRecord): StoredRecord {
    const recipient = 'recipient' in record ? (record.recipient ?? null) : null;
    const info = this.insertStmt.run(
      Date.parse(record.at),
      record.type,
      record.messageId ?? null,
      recipient?.toLowerCase() ?? null,
      JSON.stringify(record),
    );
    this.stats.count(record);
    const stored = { seq: Number(info.lastInsertRowid), ...record };
    for (const h of this.insertHooks) h(stored);
    return stored;
  }

  /**
   * Calls `h` with every record as it is inserted, inside the same transaction: for state that
   * must commit together with the record that causes it (a hard bounce and its suppression).
   * `h` must not await; what it throws fails the write.
   */
  onInsert(h: InsertHook): void {
    this.insertHooks.push(h);
  }

  /** Publishes committed records to the accounting files and listeners. */
  publish(records: StoredRecord[]): void {
    for (const r of records) if (r.seq > this.durableSeq) this.durableSeq = r.seq;
    this.journal.append(records);
    for (const l of this.listeners) l(records);
  }

  /** Calls `l` with every batch of committed records. */
  onPublish(l: Listener): void {
    this.listeners.push(l);
  }

  /** Every record of a message, in order. */
  forMessage(messageId: string): StoredRecord[] {
    return this.byMessage.all(messageId).map(parseRow);
  }

  /** Records about a recipient address (newest last), at most `limit`. */
  forRecipient(address: string, limit = 1000): StoredRecord[] {
    return this.byRecipient.all(address.toLowerCase(), limit).map(parseRow);
  }

  /**
   * Records after the cursor `after` (a sequence number), oldest first, at most `limit`, that
   * match the filters; and the cursor to ask from next. A consumer that stores the cursor
   * gets every record exactly once, in order. When fewer than `limit` match, the next cursor
   * is the durable end, so a filtered consumer does not scan the same records again.
   */
  events(q: EventQuery): { events: StoredRecord[]; next: number } {
    const where = ['seq > ?', 'seq <= ?'];
    const args: unknown[] = [q.after, this.durableSeq];
    if (q.types?.length) {
      where.push(`type IN (${q.types.map(() => '?').join(',')})`);
      args.push(...q.types);
    }
    if (q.messageId) {
      where.push('message_id = ?');
      args.push(q.messageId);
    }
    if (q.domain) {
      // Limitation: there is no index on the domain, so a filter on a rare domain reads every
      // record after the cursor once; the returned cursor keeps that from repeating.
      where.push("json_extract(json, '$.domain') = ?");
      args.push(q.domain.toLowerCase());
    }
    const sql = `SELECT seq, json FROM records WHERE ${where.join(' AND ')} ORDER BY seq LIMIT ?`;
    const events = this.db
      .prepare(sql)
      .all(...args, q.limit)
      .map(parseRow);
    const next = events.length < q.limit ? Math.max(q.after, this.durableSeq) : events.at(-1)!.seq;
    return { events, next };
  }

  /** The highest durable, published sequence number (the end of the event cursor). */
  durableEnd(): number {
    return this.durableSeq;
  }

  /** Outcome counts per hour, domain, site or category (see Stats). */
  statistics(q: StatsQuery): StatsRow[] {
    return this.stats.query(q);
  }

  /**
   * Deletes up to `batch` records older than `beforeMs` and not above `keepAfter` (the lowest
   * webhook cursor: records an endpoint has not received yet stay); returns how many went.
   */
  prune(beforeMs: number, batch = 10_000, keepAfter = Number.MAX_SAFE_INTEGER): number {
    return this.pruneStmt.run(beforeMs, keepAfter, batch).changes;
  }
}

function parseRow(row: unknown): StoredRecord {
  const { seq, json } = row as { seq: number; json: string };
  return { seq, ...(JSON.parse(json) as GridpostRecord) };
}
