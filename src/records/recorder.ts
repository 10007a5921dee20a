/**
 * The recorder: stores records inside the spool's transactions, then publishes them (accounting
 * files, counters, listeners) once those transactions committed, and answers queries.
 */
import type { Statement } from 'better-sqlite3';
import type { Db } from '../spool/store.js';
import type { Journal } from './journal.js';
import type { GridpostRecord, StoredRecord } from './types.js';

type Listener = (records: StoredRecord[]) => void;

/** Writes, publishes and queries records. */
export class Recorder {
  private readonly insertStmt: Statement;
  private readonly byMessage: Statement;
  private readonly byRecipient: Statement;
  private readonly pruneStmt: Statement;
  private readonly listeners: Listener[] = [];

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
      'DELETE FROM records WHERE seq IN (SELECT seq FROM records WHERE at < ? LIMIT ?)',
    );
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
    return { seq: Number(info.lastInsertRowid), ...record };
  }

  /** Publishes committed records to the accounting files and listeners. */
  publish(records: StoredRecord[]): void {
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

  /** Deletes up to `batch` records older than `beforeMs`; returns how many went. */
  prune(beforeMs: number, batch = 10_000): number {
    return this.pruneStmt.run(beforeMs, batch).changes;
  }
}

function parseRow(row: unknown): StoredRecord {
  const { seq, json } = row as { seq: number; json: string };
  return { seq, ...(JSON.parse(json) as GridpostRecord) };
}
