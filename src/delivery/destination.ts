/**
 * A destination: the recipients ready for one destination domain, and the sessions open to it.
 * Recipients of one message sit next to each other in the ready list, so a session can take
 * them as one transaction.
 */
import type { AttemptDetails } from '../records/types.js';
import type { QueuedRecipient } from '../spool/spool.js';
import type { SmtpReply } from './reply.js';

/** Ready recipients of one domain, in arrival order, with the sessions that serve them. */
export class Destination {
  private ready: QueuedRecipient[] = [];
  private head = 0;
  /** Sessions open or opening to this destination. */
  sessions = 0;
  /** Until when (epoch ms) the destination is held after failing as a whole; 0 = not held. */
  heldUntil = 0;
  /** The reply that caused the hold (as deferred recipients see it) and where it came from. */
  heldReply?: SmtpReply;
  heldWhere?: Partial<AttemptDetails>;
  private idle: ((gotWork: boolean) => void)[] = [];

  constructor(readonly domain: string) {}

  /** Recipients waiting for a session. */
  get size(): number {
    return this.ready.length - this.head;
  }

  /** Adds a recipient; wakes an idle session if one waits. Returns whether one was woken. */
  push(r: QueuedRecipient): boolean {
    this.ready.push(r);
    const waiter = this.idle.shift();
    waiter?.(true);
    return waiter !== undefined;
  }

  /**
   * Takes the next transaction: the first ready recipient and the ones after it that belong to
   * the same message, at most `max`. Recipients past `expiresAt` are handed to `onExpired`.
   */
  take(max: number, now: number, onExpired: (r: QueuedRecipient) => void): QueuedRecipient[] {
    const batch: QueuedRecipient[] = [];
    while (this.head < this.ready.length && batch.length < max) {
      const r = this.ready[this.head]!;
      if (batch.length > 0 && r.messageId !== batch[0]!.messageId) break;
      this.head++;
      if (now >= r.expiresAt) onExpired(r);
      else batch.push(r);
    }
    this.compact();
    return batch;
  }

  /** Removes and returns every ready recipient (when the destination fails as a whole). */
  drain(): QueuedRecipient[] {
    const all = this.ready.slice(this.head);
    this.ready = [];
    this.head = 0;
    return all;
  }

  /** Removes ready recipients that reached their maximum age. */
  sweepExpired(now: number, onExpired: (r: QueuedRecipient) => void): void {
    const keep: QueuedRecipient[] = [];
    for (let i = this.head; i < this.ready.length; i++) {
      const r = this.ready[i]!;
      if (now >= r.expiresAt) onExpired(r);
      else keep.push(r);
    }
    this.ready = keep;
    this.head = 0;
  }

  /** Waits up to `ms` for work; resolves true when work arrived. */
  waitForWork(ms: number): Promise<boolean> {
    if (this.size > 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = (got: boolean): void => {
        clearTimeout(timer);
        resolve(got);
      };
      const timer = setTimeout(() => {
        this.idle = this.idle.filter((w) => w !== waiter);
        resolve(false);
      }, ms);
      this.idle.push(waiter);
    });
  }

  /** Releases every idle session (at shutdown). */
  releaseIdle(): void {
    for (const w of this.idle.splice(0)) w(false);
  }

  /** Drops consumed slots once they are the larger half, so the array does not grow forever. */
  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.ready.length) {
      this.ready = this.ready.slice(this.head);
      this.head = 0;
    }
  }
}
