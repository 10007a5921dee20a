/**
 * Group commit: writes submitted within the commit window run in one SQLite transaction, so
 * one fsync acknowledges many messages. A writer that needs durability awaits the promise; it
 * resolves only after COMMIT returned and the WAL was fsync'd (by WalSync, off the event loop;
 * without one, as with spool.sync 'normal', right after COMMIT).
 *
 * If a group's transaction fails, each write is retried alone so that one bad write (a
 * constraint violation, a bug) cannot fail its neighbours; a failure that hits every write
 * (disk full, I/O error) rejects them all and nothing of the group is half-applied.
 */
import type { Db } from './store.js';
import type { WalSync } from './wal-sync.js';

/** One unit of work run inside a transaction; it must not await. */
export type Write = (db: Db) => void;

interface Pending {
  write: Write;
  resolve: () => void;
  reject: (err: unknown) => void;
  /** Detached writes (outcomes) are retried: their state change must not be lost. */
  retriesLeft: number;
}

/**
 * A detached write that fails (disk full) is tried again every second for ten minutes: the
 * outcome it records is already in memory only, and losing it would leave the recipient
 * stranded until a restart.
 */
const DETACHED_RETRIES = 600;
const RETRY_DELAY_MS = 1000;

/** Collects writes and commits them in groups. */
export class Committer {
  private pending: Pending[] = [];
  private scheduled = false;
  private readonly transact: (writes: Pending[]) => void;
  /** Groups committed and writes in them, for metrics and benchmarks. */
  readonly stats = { groups: 0, writes: 0 };

  constructor(
    private readonly db: Db,
    private readonly windowMs = 0,
    private readonly durable: WalSync | null = null,
  ) {
    this.transact = db.transaction((writes: Pending[]) => {
      for (const p of writes) p.write(db);
    });
  }

  /** Runs `write` in the next group; resolves once that group is durable. */
  submit(write: Write): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ write, resolve, reject, retriesLeft: 0 });
      this.schedule();
    });
  }

  /** Like submit, with callbacks instead of a promise (for outcomes nobody awaits). */
  submitDetached(write: Write, onCommitted: () => void, onError: (err: unknown) => void): void {
    this.pending.push({
      write,
      resolve: onCommitted,
      reject: onError,
      retriesLeft: DETACHED_RETRIES,
    });
    this.schedule();
  }

  /** Commits everything pending now (at shutdown). */
  flush(): void {
    const group = this.pending;
    this.pending = [];
    this.scheduled = false;
    if (group.length > 0) this.commit(group);
  }

  private retryLater(p: Pending): void {
    setTimeout(() => {
      this.pending.push(p);
      this.schedule();
    }, RETRY_DELAY_MS).unref();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // Wait `windowMs` for more writes to join the group: every fsync blocks this thread, so
    // fewer, larger groups leave more time for the sockets. It adds at most windowMs to an
    // acknowledgement.
    if (this.windowMs > 0) setTimeout(() => this.flush(), this.windowMs);
    else setImmediate(() => this.flush());
  }

  private commit(group: Pending[]): void {
    try {
      this.transact(group);
    } catch {
      this.commitOneByOne(group);
      return;
    }
    this.stats.groups++;
    this.stats.writes += group.length;
    this.acknowledge(group);
  }

  /** Resolves a committed group once it is durable. */
  private acknowledge(group: Pending[]): void {
    if (!this.durable) {
      for (const p of group) p.resolve();
      return;
    }
    this.durable.sync().then(
      () => group.forEach((p) => p.resolve()),
      // The commit is in the WAL but its fsync failed (an I/O error): nobody may be told it
      // is durable. Writers see the error; the next successful fsync still covers the data.
      (err: unknown) => group.forEach((p) => p.reject(err)),
    );
  }

  private commitOneByOne(group: Pending[]): void {
    for (const p of group) {
      try {
        this.transact([p]);
        this.stats.groups++;
        this.stats.writes++;
        this.acknowledge([p]);
      } catch (err) {
        if (p.retriesLeft-- > 0) this.retryLater(p);
        else p.reject(err);
      }
    }
  }
}
