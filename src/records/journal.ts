/**
 * Accounting files: every record as one JSON line, in files under <dataDir>/records that rotate
 * every hour and at a size limit. Lines are appended after the record's transaction committed,
 * so a file never holds a record the store does not. Limitation: lines still in the write
 * buffer at a crash are missing from the file (the store keeps them); a shipper that needs every
 * record should read the store's cursor instead.
 */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import type { StoredRecord } from './types.js';

/** Appends records to rotating JSON-lines files. */
export class Journal {
  private stream: WriteStream | null = null;
  private hour = '';
  private bytes = 0;
  private part = 0;

  constructor(
    private readonly dir: string,
    private readonly rotateBytes: number,
    private readonly now: () => number = Date.now,
    private readonly onError: (err: Error) => void = () => {},
  ) {
    mkdirSync(dir, { recursive: true });
  }

  private pending: string[] = [];
  private flushScheduled = false;

  /** Appends records as lines to the current file (written once per event-loop turn). */
  append(records: StoredRecord[]): void {
    for (const r of records) this.pending.push(JSON.stringify(r));
    if (this.flushScheduled || this.pending.length === 0) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /** Writes the lines collected so far in one write. */
  flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0) return;
    const text = this.pending.join('\n') + '\n';
    this.pending = [];
    this.current(text.length)?.write(text);
    this.bytes += text.length;
  }

  /** The file that takes the next write, opening a new one at the hour or the size limit. */
  private current(nextBytes: number): WriteStream | null {
    const hour = new Date(this.now()).toISOString().slice(0, 13).replace(/[-T:]/g, '');
    if (hour !== this.hour) {
      this.hour = hour;
      this.part = 0;
      this.reopen();
    } else if (this.bytes + nextBytes > this.rotateBytes && this.bytes > 0) {
      this.part++;
      this.reopen();
    }
    return this.stream;
  }

  private reopen(): void {
    this.stream?.end();
    const suffix = this.part > 0 ? `-${this.part}` : '';
    const file = join(this.dir, `records-${this.hour}${suffix}.jsonl`);
    const stream = createWriteStream(file, { flags: 'a' });
    // A write error (disk full) must not stop the engine: the store holds every record, so the
    // file misses lines until the next rotation reopens it.
    stream.on('error', (err) => {
      this.onError(err);
      if (this.stream === stream) this.stream = null;
      this.hour = '';
    });
    this.stream = stream;
    this.bytes = 0;
  }

  /** Flushes and closes the current file. */
  close(): Promise<void> {
    this.flush();
    const s = this.stream;
    this.stream = null;
    if (!s) return Promise.resolve();
    return new Promise((resolve) => s.end(resolve));
  }
}
