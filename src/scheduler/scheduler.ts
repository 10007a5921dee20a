/**
 * The scheduler decides when each recipient is tried: at once after reception, then along its
 * queue's retry schedule (or its destination's, when a shaping rule sets one), and never past
 * its maximum age. It holds at most `window` recipients in memory (handed to the dispatcher);
 * the rest wait in the store's due-index, one per scheduled queue, and are taken when room
 * frees up or when their time comes. One timer, set to the earliest due time the store reports,
 * replaces any polling.
 *
 * Fairness between queues: room in memory is shared by weight. Each queue may always hold its
 * reserve (its weight's share of the window) even when the window is full, so a transactional
 * message is never kept out of memory by a bulk backlog; the dispatcher then serves queues by
 * weight within each ready queue. Memory is therefore bounded by twice the window.
 */
import { localReply, type SmtpReply } from '../delivery/reply.js';
import { attemptRecord, expirationRecord } from '../records/build.js';
import type { AttemptDetails } from '../records/types.js';
import type { Policy } from '../shaping/policy.js';
import type { QueueConfig } from '../shaping/policy-schema.js';
import type { AcceptedMessage, NewMessage, QueuedRecipient, Spool } from '../spool/spool.js';
import { nextAttemptAt } from './retry.js';

/** What one attempt did for one recipient. */
export interface Outcome {
  /**
   * delivered, transient (retry later), permanent (bounce), or delayed: not tried because its
   * destination is held or suspended; a TransientFailure record, no attempt counted, and the
   * next try at `retryAt`.
   */
  kind: 'delivered' | 'transient' | 'permanent' | 'delayed';
  details: AttemptDetails;
  /** Retry delays of the destination (shaping), instead of the queue's. */
  retry?: number[] | null;
  /** For delayed: when to try again. */
  retryAt?: number;
}

/** Receives recipients that are due now. */
export type DispatchFn = (r: QueuedRecipient) => void;

export interface SchedulerOptions {
  spool: Spool;
  /** The policy in force (queues and their weights); read at every decision. */
  policy: () => Policy;
  /** Whether an operator paused the queue. */
  paused: (queue: string) => boolean;
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

// After the dispatcher gives a recipient back (ready queue full, path paused), its queue is
// not refilled for this long, in ms: long enough to stop a give-back loop, short enough that
// other sites of the queue hardly notice.
const RELEASE_HOLDOFF_MS = 1000;

// The most recipients a refill waits to have room for before it queries the store (also at
// most a fiftieth of the window). Each query and lease costs about as much for 64 rows as for
// one, so this divides the store work per scheduling decision by up to 64.
const MAX_REFILL_BATCH = 64;

/** Schedules attempts, retries and expiry. */
export class Scheduler {
  private total = 0;
  private readonly perQueue = new Map<string, number>();
  /**
   * Per queue, the earliest time at which the store may hold a due, unleased recipient
   * (absent = unknown, so look). Outcomes call refill often; this keeps them from querying a
   * store with nothing due.
   */
  private readonly storeDueAt = new Map<string, number>();
  /** Per queue, until when (epoch ms) refill leaves it alone after a release. */
  private readonly releasedUntil = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private dispatch: DispatchFn = () => {};
  private readonly now: () => number;
  private stopped = false;
  private refilling = false;
  private refillAgain = false;
  /**
   * Scheduling decisions (recipients taken from the store and placed in a ready queue) and the
   * time they took, in ms: the store query, the site and source choice, the ready queue.
   */
  readonly stats = { decisions: 0, ms: 0 };

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
    return this.opts.policy().queue(name);
  }

  /** Recipients currently held in memory (ready or in delivery). */
  get held(): number {
    return this.total;
  }

  /** Recipients of one queue held in memory. */
  heldOf(queue: string): number {
    return this.perQueue.get(queue) ?? 0;
  }

  /**
   * Stores new messages; resolves once durable. Their recipients go to the dispatcher at once
   * when their queue has room in memory, otherwise they wait in the store, due now.
   */
  async accept(messages: NewMessage[]): Promise<AcceptedMessage[]> {
    // Reserved before the await, so that concurrent accepts cannot overfill the window.
    const leased = messages.map((m) => {
      const ok = this.hasRoom(m.queue, m.recipients.length);
      if (ok) this.hold(m.queue, m.recipients.length);
      return ok;
    });
    let accepted: AcceptedMessage[];
    try {
      accepted = await this.opts.spool.accept(messages, leased);
    } catch (err) {
      messages.forEach((m, i) => leased[i] && this.hold(m.queue, -m.recipients.length));
      throw err;
    }
    accepted.forEach((a, i) => {
      if (leased[i]) a.recipients.forEach((r) => this.dispatch(r));
      else this.storeDueIn(messages[i]!.queue, this.now());
    });
    return accepted;
  }

  /** Takes the outcome of an attempt: completes, retries later or expires the recipient. */
  outcome(r: QueuedRecipient, o: Outcome): void {
    const now = this.now();
    this.hold(r.queue, -1);
    if (o.kind === 'transient' || o.kind === 'delayed') this.retryOrExpire(r, o, now);
    else {
      const type = o.kind === 'delivered' ? 'Delivery' : 'Bounce';
      this.opts.spool.complete(r, [attemptRecord(type, r, o.details, now)]);
    }
    this.refill();
  }

  /** Ends a recipient in memory that reached its maximum age before an attempt. */
  expire(r: QueuedRecipient, lastReply?: SmtpReply): void {
    this.hold(r.queue, -1);
    const now = this.now();
    const record = expirationRecord(r, now, EXPIRED_REPLY, lastReply ?? r.lastReply);
    this.opts.spool.complete(r, [record]);
    this.refill();
  }

  /**
   * Gives a recipient in memory back to the store until `at`, untried and without a record
   * (its ready queue was full or paused, its queue was paused, or an operator moved it).
   */
  release(r: QueuedRecipient, at: number): void {
    this.hold(r.queue, -1);
    const queue = r.queue;
    this.opts.spool.release(r, at, () => this.storeDueIn(queue, at));
    // The dispatcher gave it back because it cannot take more of this queue now. Refilling the
    // queue at once would take the next due recipients only to have them given back too: with
    // a backlog of 200,000 that is a loop of store writes that starves the event loop.
    // Limitation: the hold-off is per queue, not per site, so while one site's ready queue is
    // full the queue's other sites are refilled once a second only, and each refill still
    // gives back what the full site cannot take (about a window's worth of store writes).
    this.releasedUntil.set(queue, this.now() + RELEASE_HOLDOFF_MS);
    this.wakeAt(this.now() + RELEASE_HOLDOFF_MS);
  }

  /** Ends a recipient in memory with the given records (an operator's purge). */
  finish(r: QueuedRecipient, records: Parameters<Spool['complete']>[1]): void {
    this.hold(r.queue, -1);
    this.opts.spool.complete(r, records);
    this.refill();
  }

  /** Hands a moved recipient (new queue or pool, already stored) to the dispatcher again. */
  requeue(r: QueuedRecipient, to: { queue?: string; pool?: string }): void {
    this.hold(r.queue, -1);
    if (to.queue) r.queue = to.queue;
    if (to.pool) r.pool = to.pool;
    this.hold(r.queue, 1);
    this.dispatch(r);
  }

  /** Looks at the store again now (a queue was resumed, recipients were made due). */
  wake(queue?: string): void {
    if (queue) this.storeDueAt.delete(queue);
    else this.storeDueAt.clear();
    if (queue) this.releasedUntil.delete(queue);
    else this.releasedUntil.clear();
    this.refill();
  }

  private retryOrExpire(r: QueuedRecipient, o: Outcome, now: number): void {
    if (o.kind === 'transient') r.attempts++;
    if (now >= r.expiresAt) {
      this.opts.spool.complete(r, [
        attemptRecord('TransientFailure', r, o.details, now),
        expirationRecord(r, now, EXPIRED_REPLY, o.details.reply),
      ]);
      return;
    }
    const queue = this.queue(r.queue);
    const schedule = o.retry ? { ...queue, retry: o.retry } : queue;
    const retryAt =
      o.kind === 'delayed' && o.retryAt !== undefined
        ? o.retryAt
        : nextAttemptAt(now, Math.max(1, r.attempts), schedule, this.opts.random);
    // The last chance is the expiry itself: the recipient is then taken and expired.
    const next = Math.min(retryAt, r.expiresAt);
    const record = attemptRecord('TransientFailure', r, o.details, now, next);
    // Only once the deferral is committed can the store's due-index show it.
    const name = r.queue;
    this.opts.spool.defer(r, next, o.details.reply, record, () => this.storeDueIn(name, next));
  }

  private hold(queue: string, n: number): void {
    this.total += n;
    this.perQueue.set(queue, (this.perQueue.get(queue) ?? 0) + n);
  }

  /** Whether `n` more recipients of `queue` may come into memory now. */
  private hasRoom(queue: string, n: number): boolean {
    if (this.opts.paused(queue)) return false;
    if (this.total + n <= this.opts.window) return true;
    return this.heldOf(queue) + n <= this.reserve(queue);
  }

  /** The part of the window a queue may always hold: its weight's share. */
  private reserve(queue: string): number {
    const p = this.opts.policy();
    const names = p.queueNames();
    const sum = names.reduce((s, q) => s + p.queue(q).weight, 0) || 1;
    return Math.floor((this.opts.window * p.queue(queue).weight) / sum);
  }

  /** Notes that the store holds a recipient of `queue` due at `at`, and wakes then. */
  private storeDueIn(queue: string, at: number): void {
    const known = this.storeDueAt.get(queue);
    if (known !== undefined) this.storeDueAt.set(queue, Math.min(known, at));
    this.wakeAt(at);
  }

  /** Fills free room in memory with recipients due in the store, queue by queue by weight. */
  private refill(): void {
    // Dispatching can come straight back here (a recipient deferred at once): one at a time.
    if (this.stopped) return;
    if (this.refilling) {
      this.refillAgain = true;
      return;
    }
    this.refilling = true;
    try {
      do {
        this.refillAgain = false;
        this.fillOnce();
      } while (this.refillAgain && !this.stopped);
    } finally {
      this.refilling = false;
    }
  }

  private fillOnce(): void {
    const now = this.now();
    const policy = this.opts.policy();
    const queues = new Set([...policy.queueNames(), ...this.opts.spool.storedQueues()]);
    const due = [...queues].filter((q) => !this.opts.paused(q) && this.mayBeDue(q, now));
    if (due.length === 0) return;
    const free = Math.max(0, this.opts.window - this.total);
    const weights = due.map((q) => policy.queue(q).weight);
    const sum = weights.reduce((a, b) => a + b, 0);
    const batch = Math.max(1, Math.min(MAX_REFILL_BATCH, Math.floor(this.opts.window / 50)));
    due.forEach((q, i) => {
      const share = Math.floor((free * weights[i]!) / sum);
      const owed = Math.max(0, this.reserve(q) - this.heldOf(q));
      const room = Math.max(share, owed, free > 0 ? 1 : 0);
      // A queue that has mail in memory waits until a batch's worth of room is free: one store
      // query per batch instead of one per outcome. An empty queue takes even one at once.
      if (room >= batch || (room > 0 && this.heldOf(q) === 0)) this.take(q, now, room);
    });
  }

  /** Whether the store may hold something of `queue` due by `now`; re-arms the timer if not. */
  private mayBeDue(queue: string, now: number): boolean {
    const held = this.releasedUntil.get(queue) ?? 0;
    if (held > now) {
      this.wakeAt(held);
      return false;
    }
    const at = this.storeDueAt.get(queue);
    if (at === undefined || now >= at) return true;
    // Timers may fire a millisecond before Date.now() reaches their time: re-arm.
    if (at !== Infinity) this.wakeAt(at);
    return false;
  }

  private take(queue: string, now: number, room: number): void {
    const started = performance.now();
    const due = this.opts.spool.takeDue(queue, now, room);
    this.hold(queue, due.length);
    if (due.length < room) {
      // The store has nothing more of this queue due now: learn when it next will.
      const next = this.opts.spool.nextDueAt(queue) ?? Infinity;
      this.storeDueAt.set(queue, next);
      if (next !== Infinity) this.wakeAt(next);
    } else this.storeDueAt.set(queue, now);
    for (const r of due) {
      if (now >= r.expiresAt) this.expireQuietly(r);
      else this.dispatch(r);
    }
    this.stats.decisions += due.length;
    this.stats.ms += performance.now() - started;
  }

  private expireQuietly(r: QueuedRecipient): void {
    this.hold(r.queue, -1);
    const record = expirationRecord(r, this.now(), EXPIRED_REPLY, r.lastReply);
    this.opts.spool.complete(r, [record]);
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
