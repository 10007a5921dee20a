/**
 * The suppression list: addresses the engine will not send to, each with why (a hard bounce,
 * a complaint, an unsubscribe, an operator) and where that came from. Filled by hand and from
 * the outcomes (a hard bounce suppresses its address); checked at intake and again before
 * every attempt. Kept in the store; addresses are compared case-insensitively.
 */
import type { Statement } from 'better-sqlite3';
import type { Committer } from '../spool/committer.js';
import type { Db } from '../spool/store.js';

export const SUPPRESSION_REASONS = [
  'hard-bounce',
  'complaint',
  'unsubscribe',
  'inactive',
  'rule',
  'manual',
] as const;
export type SuppressionReason = (typeof SUPPRESSION_REASONS)[number];

/** One suppressed address. */
export interface Suppression {
  address: string;
  reason: SuppressionReason;
  /** What caused it: a record's recipient id, "api", "import", ... */
  source: string;
  at: string;
}

/** The suppression list in the store. */
export class SuppressionList {
  private readonly stmt: Record<'get' | 'has' | 'put' | 'del' | 'page' | 'count', Statement>;
  /**
   * Bumped whenever an address is added: a recipient checked at this version needs no second
   * look before its attempt unless the list grew meanwhile (each look is a store read).
   */
  version = 0;

  constructor(
    private readonly db: Db,
    private readonly committer: Committer,
  ) {
    db.exec(`CREATE TABLE IF NOT EXISTS suppressions (address TEXT PRIMARY KEY,
      reason TEXT NOT NULL, source TEXT NOT NULL, at INTEGER NOT NULL)`);
    this.stmt = {
      get: db.prepare('SELECT address, reason, source, at FROM suppressions WHERE address = ?'),
      has: db.prepare('SELECT 1 FROM suppressions WHERE address = ?').pluck(),
      put: db.prepare(`INSERT INTO suppressions (address, reason, source, at) VALUES (?, ?, ?, ?)
        ON CONFLICT (address) DO NOTHING`),
      del: db.prepare('DELETE FROM suppressions WHERE address = ?'),
      page: db.prepare(
        'SELECT address, reason, source, at FROM suppressions WHERE address > ? ORDER BY address LIMIT ?',
      ),
      count: db.prepare('SELECT COUNT(*) AS n FROM suppressions'),
    };
  }

  /** The entry of an address, if it is suppressed. */
  get(address: string): Suppression | undefined {
    // Most addresses are not on the list: a bare existence check first is cheaper.
    if (this.stmt.has.get(address.toLowerCase()) === undefined) return undefined;
    const row = this.stmt.get.get(address.toLowerCase()) as Row | undefined;
    return row ? toEntry(row) : undefined;
  }

  /**
   * Suppresses addresses (kept as they are when already suppressed: the first reason stays);
   * resolves once durable with how many were new.
   */
  async add(entries: { address: string; reason: SuppressionReason; source: string }[]) {
    let added = 0;
    const at = Date.now();
    await this.committer.submit(() => {
      for (const e of entries) {
        added += this.stmt.put.run(e.address.toLowerCase(), e.reason, e.source, at).changes;
      }
    });
    this.version++;
    return added;
  }

  /**
   * Suppresses one address inside a committer write that is already running (an outcome's
   * record and the suppression it causes commit together, so nobody sees one without the
   * other). The first reason stays when the address already is suppressed.
   */
  addInWrite(address: string, reason: SuppressionReason, source: string): void {
    const changes = this.stmt.put.run(address.toLowerCase(), reason, source, Date.now()).changes;
    // Bumping before COMMIT is safe: the transaction is synchronous, and a rolled-back write
    // only costs one extra look per recipient.
    if (changes > 0) this.version++;
  }

  /** Removes an address; false when it was not suppressed. */
  async remove(address: string): Promise<boolean> {
    let removed = 0;
    await this.committer.submit(() => {
      removed = this.stmt.del.run(address.toLowerCase()).changes;
    });
    return removed > 0;
  }

  /** Entries after `after` (an address), in address order, at most `limit`. */
  page(after: string, limit: number): Suppression[] {
    return (this.stmt.page.all(after.toLowerCase(), limit) as Row[]).map(toEntry);
  }

  get size(): number {
    return (this.stmt.count.get() as { n: number }).n;
  }
}

interface Row {
  address: string;
  reason: SuppressionReason;
  source: string;
  at: number;
}

function toEntry(r: Row): Suppression {
  return {
    address: r.address,
    reason: r.reason,
    source: r.source,
    at: new Date(r.at).toISOString(),
  };
}
