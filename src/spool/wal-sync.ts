/**
 * Durability without blocking the event loop. The store runs with synchronous=NORMAL, so a
 * COMMIT writes its WAL frames but does not fsync them; this class then fsyncs the WAL file in
 * libuv's thread pool, and the committer acknowledges a group only once that fsync returned.
 * That is exactly what synchronous=FULL would guarantee (every acknowledged commit is on
 * disk), but the fsync no longer stops the thread that serves the sockets, and fsyncs
 * coalesce: while one runs, every commit made meanwhile waits for the single next one.
 * Checkpoints stay safe: in WAL mode with NORMAL, SQLite itself syncs the WAL before a
 * checkpoint and the database file after it.
 */
import { closeSync, fsync, fsyncSync, openSync } from 'node:fs';

/** The fsync used: node's, or a test's stand-in that counts and delays calls. */
export type FsyncFn = (fd: number, done: (err: NodeJS.ErrnoException | null) => void) => void;

/** Coalescing asynchronous fsync of one file. */
export class WalSync {
  private fd: number | null = null;
  private current: Promise<void> | null = null;
  private next: Promise<void> | null = null;

  /** `walPath` is the store's "-wal" file; `dir` is fsync'd once so the file's entry is durable. */
  constructor(
    private readonly walPath: string,
    dir: string,
    private readonly fsyncFn: FsyncFn = fsync,
  ) {
    const dirFd = openSync(dir, 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  }

  /** Resolves once everything written to the WAL before this call is on disk. */
  sync(): Promise<void> {
    if (this.next) return this.next; // a later fsync is already planned: it covers this write
    if (!this.current) return (this.current = this.fsyncOnce());
    // An fsync is running, and it may have started before this write: plan one more.
    this.next = this.current
      .catch(() => undefined)
      .then(() => {
        this.next = null;
        return (this.current ??= this.fsyncOnce());
      });
    return this.next;
  }

  /** Closes the file (at shutdown, after the last sync). */
  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private fsyncOnce(): Promise<void> {
    const done: Promise<void> = new Promise<void>((resolve, reject) => {
      this.fsyncFn(this.walFd(), (err) => (err ? reject(err) : resolve()));
    }).finally(() => {
      if (this.current === done) this.current = null;
    });
    return done;
  }

  private walFd(): number {
    this.fd ??= openSync(this.walPath, 'r');
    return this.fd;
  }
}
