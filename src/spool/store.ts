/**
 * The embedded store: one SQLite database (better-sqlite3, WAL) in the data directory that holds
 * the spool (message bodies and per-recipient queue state) and the records.
 *
 * Why bodies live in SQLite and not in one file per message: a file per message costs a file
 * fsync plus a directory fsync before each acknowledgement, and a rename and unlink later. With
 * the body in the same WAL transaction as its recipients and its Reception record, one fsync
 * makes a whole group of messages durable and consistent (no orphan files, no index without a
 * body), which is what group commit needs. WAL pages are checkpointed in the background of
 * SQLite's own commits. Limitation: the whole body is held in memory while it is accepted and
 * while it is delivered, so the largest message (smtp.maxMessageSize) bounds that cost per
 * concurrent transaction.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export type Db = Database.Database;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS messages (
  id TEXT PRIMARY KEY,
  sender TEXT NOT NULL,
  queue TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  size INTEGER NOT NULL,
  body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS recipients (
  id TEXT PRIMARY KEY,
  message_id TEXT NOT NULL,
  address TEXT NOT NULL,
  domain TEXT NOT NULL,
  queue TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  leased INTEGER NOT NULL DEFAULT 0,
  last_reply TEXT,
  pool TEXT,
  source TEXT,
  site TEXT
);
CREATE INDEX IF NOT EXISTS recipients_message ON recipients(message_id);
CREATE INDEX IF NOT EXISTS recipients_address ON recipients(address COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS recipients_domain ON recipients(domain);
CREATE TABLE IF NOT EXISTS records (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  type TEXT NOT NULL,
  message_id TEXT,
  recipient TEXT,
  json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_message ON records(message_id);
CREATE INDEX IF NOT EXISTS records_recipient ON records(recipient);
CREATE INDEX IF NOT EXISTS records_at ON records(at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

/** The store's database file in a data directory. */
export function storeFile(dataDir: string): string {
  return join(dataDir, 'gridpost.db');
}

/** Opens (and creates) the store in dataDir. */
export function openStore(dataDir: string): Db {
  // Mode 0700 when we create it: the store holds message bodies, which are other people's mail.
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const db = new Database(storeFile(dataDir));
  db.pragma('journal_mode = WAL');
  // NORMAL: COMMIT does not fsync. With sync 'full', the committer fsyncs the WAL itself, off
  // the event loop (wal-sync.ts), before it acknowledges; with 'normal' nobody does.
  db.pragma('synchronous = NORMAL');
  // Checkpoint every ~16 MB of WAL (4096 pages of 4 KiB) rather than SQLite's 4 MB default,
  // so checkpoints run less often under a steady injection load.
  db.pragma('wal_autocheckpoint = 4096');
  db.pragma('cache_size = -65536'); // 64 MiB page cache (negative = KiB)
  db.pragma('busy_timeout = 5000'); // ms; the CLI may read while the engine writes
  db.exec(SCHEMA);
  migrate(db);
  return db;
}

/**
 * Brings a store made by an older release up to this schema: the pool, source and site of
 * each recipient (the site as of its last attempt, for operator actions by site), and the
 * due-index per scheduled queue (which replaces the single one, so that each queue can be
 * taken from in turn).
 */
function migrate(db: Db): void {
  const info = db.pragma('table_info(recipients)') as { name: string }[];
  const cols = new Set(info.map((c) => c.name));
  if (!cols.has('pool')) db.exec('ALTER TABLE recipients ADD COLUMN pool TEXT');
  if (!cols.has('source')) db.exec('ALTER TABLE recipients ADD COLUMN source TEXT');
  if (!cols.has('site')) db.exec('ALTER TABLE recipients ADD COLUMN site TEXT');
  db.exec(`DROP INDEX IF EXISTS recipients_due;
    CREATE INDEX IF NOT EXISTS recipients_queue_due ON recipients(queue, next_attempt_at)
      WHERE leased = 0;`);
}
