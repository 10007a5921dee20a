/**
 * The scheduler decides when each recipient is tried: at once after reception, then along its
 * queue's retry schedule, and never past its maximum age. It holds at most `window` recipients
 * in memory (handed to the dispatcher); the rest wait in the store's due-index and are taken
 * when room frees up or when their time comes. One timer, set to the earliest due time the
 * store reports, replaces any polling.
 */
import type { QueueConfig } from '../config/schema.js';
import { localReply, type SmtpReply } from '../delivery/reply.js';
import { attemptRecord, expirationRecord } from '../records/build.js';
import type { AttemptDetails } from '../records/types.js';
import type { AcceptedMessage, NewMessage, QueuedRecipient, Spool } from '../spool/spool.js';
import { nextAttemptAt } from './retry.js';

/** What one attempt did for one recipient. */
export interface Outcome {
  kind: 'delivered' | 'transient' | 'permanent';
  details: AttemptDetails;
}

/** Receives recipients that are due now. */
export type DispatchFn = (r: QueuedRecipient) => void;

export interface SchedulerOptions {
  spool: Spool;
  queues: Record<string, QueueConfig>;
  window: number;
  now?: () => number;
  random?: () => number;
}

/** The expiry reply: what a sender sees for a recipient that timed out in the queue. */
export const EXPIRED_REPLY = localReply(
  554,
  '5.4.7',
  'Message expired: delivery not possible within the queue maximum age',
);

/** Schedules attempts, retries and expiry. */
export class Scheduler {
  private inMemory = 0;
  /**
   * The earliest time at which the store may hold a due, unleased recipient (0 = unknown, so
   * look). Outcomes call refill often; this keeps them from querying a store with nothing due.
   */
  private storeDueAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private dispatch: DispatchFn = () => {};
  private readonly now: () => number;
  private stopped = false;

  constructor(private readonly opts: SchedulerOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Starts scheduling: forgets stale leases and loads what is due. */
  start(dispatch: DispatchFn): void {
    this.dispatch = dispatch;
    this.opts.spool.releaseLeases();
    this.refill();
  }

  /** Stops the timer; recipients in memory stay leased until the next start clears them. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** The queue settings for a queue name (unknown names use "default"). */
  queue(name: string): QueueConfig {
    return this.opts.queues[name] ?? (this.opts.queues.default as QueueConfig);
  }

  /** Recipients currently held in memory (ready or in delivery). */
  get held(): number {
    return this.inMemory;
  }

  /**
   * Stores new messages; resolves once durable. Their recipients go to the dispatcher at once
   * when the window has room, otherwise they wait in the store, due now.
   */
  async accept(messages: NewMessage[]): Promise<AcceptedMessage[]> {
    const n = messages.reduce((sum, m) => sum + m.recipients.length, 0);
    const leased = this.inMemory + n <= this.opts.window;
    // Reserved before the await, so that concurrent accepts cannot overfill the window.
    if (leased) this.inMemory += n;
    let accepted: AcceptedMessage[];
    try {
      accepted = await this.opts.spool.accept(messages, leased);
    } catch (err) {
      if (leased) this.inMemory -= n;
      throw err;
    }
    if (leased) for (const a of accepted) a.recipients.forEach((r) => this.dispatch(r));
    else this.storeDueIn(this.now());
    return accepted;
  }

  /** Takes the outcome of an attempt: completes, retries later or expires the recipient. */
  outcome(r: QueuedRecipient, o: Outcome): void {
    const now = this.now();
    this.inMemory--;
    if (o.kind === 'transient') this.retryOrExpire(r, o.details, now);
    else {
      const type = o.kind === 'delivered' ? 'Delivery' : 'Bounce';
      this.opts.spool.complete(r, [attemptRecord(type, r, o.details, now)]);
    }
    this.refill();
  }

  /** Ends a recipient in memory that reached its maximum age before an attempt. */
  expire(r: QueuedRecipient, lastReply?: SmtpReply): void {
    this.inMemory--;
    const now = this.now();
    const record = expirationRecord(r, now, EXPIRED_REPLY, lastReply ?? r.lastReply);
    this.opts.spool.complete(r, [record]);
    this.refill();
  }

  private retryOrExpire(r: QueuedRecipient, details: AttemptDetails, now: number): void {
    r.attempts++;
    if (now >= r.expiresAt) {
      this.opts.spool.complete(r, [
        attemptRecord('TransientFailure', r, details, now),
        expirationRecord(r, now, EXPIRED_REPLY, details.reply),
      ]);
      return;
    }
    const retryAt = nextAttemptAt(now, r.attempts, this.queue(r.queue), this.opts.random);
    // The last chance is the expiry itself: the recipient is then taken and expired.
    const next = Math.min(retryAt, r.expiresAt);
    const record = attemptRecord('TransientFailure', r, details, now, next);
    // Only once the deferral is committed can the store's due-index show it.
    this.opts.spool.defer(r, next, details.reply, record, () => this.storeDueIn(next));
  }

  /** Notes that the store holds a recipient due at `at`, and wakes then. */
  private storeDueIn(at: number): void {
    this.storeDueAt = Math.min(this.storeDueAt, at);
    this.wakeAt(at);
  }

  /** Fills free room in the window with recipients due in the store. */
  private refill(): void {
    if (this.stopped) return;
    const room = this.opts.window - this.inMemory;
    const now = this.now();
    if (room <= 0) return; // an outcome will free room and call again
    if (now < this.storeDueAt) {
      // Timers may fire a millisecond before Date.now() reaches their time: re-arm.
      if (this.storeDueAt !== Infinity) this.wakeAt(this.storeDueAt);
      return;
    }
    const due = this.opts.spool.takeDue(now, room);
    this.inMemory += due.length;
    for (const r of due) {
      if (now >= r.expiresAt) this.expire(r);
      else this.dispatch(r);
    }
    if (due.length < room) {
      // The store has nothing more due now: learn when it next will.
      this.storeDueAt = this.opts.spool.nextDueAt() ?? Infinity;
      if (this.storeDueAt !== Infinity) this.wakeAt(this.storeDueAt);
    }
  }

  /** Sets the timer to `at` unless it is already due earlier. */
  private wakeAt(at: number): void {
    if (this.stopped || at >= this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    const delay = Math.max(0, Math.min(at - this.now(), 2 ** 31 - 1));
    this.timer = setTimeout(() => {
      this.timer = null;
      this.timerAt = Infinity;
      this.refill();
    }, delay);
  }
}
