/**
 * A ready queue: the recipients ready to go from one egress source to one site, the sessions
 * open on that path, and its limits (connections, rates) and state. Shaping applies here.
 *
 * Inside, recipients wait in one list per scheduled queue, and sessions take from the lists by
 * weight (stride scheduling: each list advances by 1/weight per recipient taken, and the list
 * furthest behind goes next). A transactional message therefore overtakes a bulk backlog to
 * the same site instead of waiting behind it. Recipients of one message sit next to each
 * other in their list, so a session can take them as one transaction.
 */
import type { AttemptDetails } from '../records/types.js';
import type { EffectiveSettings } from '../shaping/policy.js';
import type { Rate } from '../shaping/rate.js';
import { Throttle } from '../shaping/throttle.js';
import type { QueuedRecipient } from '../spool/spool.js';
import type { SmtpReply } from './reply.js';
import type { Site } from './site.js';

interface Lane {
  items: QueuedRecipient[];
  head: number;
  /** Stride position: advances by 1/weight per recipient taken. */
  pass: number;
}

/** Ready recipients and sessions of one egress path (source x site). */
export class ReadyQueue {
  private readonly lanes = new Map<string, Lane>();
  private count = 0;
  /** Sessions open or opening on this path. */
  sessions = 0;
  /** Until when (epoch ms) the path is held after its site failed as a whole; 0 = not held. */
  heldUntil = 0;
  heldReply?: SmtpReply;
  heldWhere?: Partial<AttemptDetails>;
  /** The settings in force and the policy/site versions they were computed for. */
  settings!: EffectiveSettings;
  settingsKey = '';
  messageThrottle: Throttle | null = null;
  connectionThrottle: Throttle | null = null;
  /** A timer that reopens sessions once a throttle allows (or a hold ends). */
  wakeTimer: NodeJS.Timeout | null = null;
  /** Why the last session could not start or had to wait, for status. */
  waitReason: string | null = null;
  /** Recipients given back to the store because a lane held maxReady, and the last time. */
  heldBack = { recipients: 0, at: 0, reason: '' };
  private idle: ((gotWork: boolean) => void)[] = [];

  constructor(
    readonly source: string,
    readonly site: Site,
  ) {}

  get key(): string {
    return pathKey(this.source, this.site.name);
  }

  /** Keeps the throttles in step with the rates in force (a live change, a back-off). */
  syncThrottles(
    limits: { messageRate: Rate | null; connectionRate: Rate | null },
    now: () => number,
  ) {
    this.messageThrottle = syncThrottle(this.messageThrottle, limits.messageRate, now);
    this.connectionThrottle = syncThrottle(this.connectionThrottle, limits.connectionRate, now);
  }

  /** Counts a recipient given back to the store because its lane is full. */
  noteHeldBack(queue: string, maxReady: number, now: number): void {
    this.heldBack.recipients++;
    this.heldBack.at = now;
    this.heldBack.reason =
      `the ready queue holds its maxReady (${maxReady}) of queue ${queue}; ` +
      'more wait in the store until it has sent some';
  }

  /** Recipients waiting for a session. */
  get size(): number {
    return this.count;
  }

  /** Recipients of one scheduled queue waiting here. */
  sizeOf(queue: string): number {
    const lane = this.lanes.get(queue);
    return lane ? lane.items.length - lane.head : 0;
  }

  /** Ready recipients per scheduled queue. */
  sizes(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [q, lane] of this.lanes) out[q] = lane.items.length - lane.head;
    return out;
  }

  /** Adds a recipient; wakes an idle session if one waits. Returns whether one was woken. */
  push(r: QueuedRecipient): boolean {
    let lane = this.lanes.get(r.queue);
    if (!lane) {
      // A lane that joins starts level with the others: no credit for the time it was empty.
      lane = { items: [], head: 0, pass: this.minPass() };
      this.lanes.set(r.queue, lane);
    }
    lane.items.push(r);
    this.count++;
    const waiter = this.idle.shift();
    waiter?.(true);
    return waiter !== undefined;
  }

  /** Puts recipients back at the front of their lane (taken, then not sent). */
  unshift(rs: QueuedRecipient[]): void {
    for (const r of [...rs].reverse()) {
      const lane = this.lanes.get(r.queue) ?? { items: [], head: 0, pass: this.minPass() };
      this.lanes.set(r.queue, lane);
      if (lane.head > 0) lane.items[--lane.head] = r;
      else lane.items.unshift(r);
      this.count++;
    }
  }

  /**
   * Takes the next transaction: from the lane furthest behind by weight, its first recipient
   * and the ones after it of the same message, at most `max`. Recipients past `expiresAt` are
   * handed to `onExpired`.
   */
  take(
    max: number,
    now: number,
    weight: (queue: string) => number,
    onExpired: (r: QueuedRecipient) => void,
  ): QueuedRecipient[] {
    const batch: QueuedRecipient[] = [];
    while (batch.length === 0 && this.count > 0) {
      const [queue, lane] = this.nextLane(weight);
      const w = Math.max(1, weight(queue));
      while (lane.head < lane.items.length && batch.length < max) {
        const r = lane.items[lane.head]!;
        if (batch.length > 0 && r.messageId !== batch[0]!.messageId) break;
        lane.head++;
        this.count--;
        lane.pass += 1 / w;
        if (now >= r.expiresAt) onExpired(r);
        else batch.push(r);
      }
      this.compact(queue, lane);
    }
    return batch;
  }

  /** Removes and returns every ready recipient (when the path fails as a whole). */
  drain(): QueuedRecipient[] {
    return this.extract(() => true);
  }

  /** Removes and returns the ready recipients that match. */
  extract(match: (r: QueuedRecipient) => boolean): QueuedRecipient[] {
    const out: QueuedRecipient[] = [];
    for (const [queue, lane] of this.lanes) {
      const keep: QueuedRecipient[] = [];
      for (let i = lane.head; i < lane.items.length; i++) {
        const r = lane.items[i]!;
        (match(r) ? out : keep).push(r);
      }
      lane.items = keep;
      lane.head = 0;
      if (keep.length === 0) this.lanes.delete(queue);
    }
    this.count -= out.length;
    return out;
  }

  /** Removes ready recipients that reached their maximum age. */
  sweepExpired(now: number, onExpired: (r: QueuedRecipient) => void): void {
    for (const r of this.extract((x) => now >= x.expiresAt)) onExpired(r);
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

  /** Releases every idle session (at shutdown, or when the path is suspended). */
  releaseIdle(): void {
    for (const w of this.idle.splice(0)) w(false);
  }

  /** The lane furthest behind; on a tie the heavier queue goes first. */
  private nextLane(weight: (queue: string) => number): [string, Lane] {
    let best: [string, Lane] | null = null;
    for (const entry of this.lanes) {
      const lane = entry[1];
      if (lane.head >= lane.items.length) continue;
      const ahead = best && lane.pass === best[1].pass && weight(entry[0]) > weight(best[0]);
      if (!best || lane.pass < best[1].pass || ahead) best = entry;
    }
    return best!;
  }

  private minPass(): number {
    let min = Infinity;
    for (const lane of this.lanes.values()) {
      if (lane.head < lane.items.length) min = Math.min(min, lane.pass);
    }
    return min === Infinity ? 0 : min;
  }

  /** Drops consumed slots once they are the larger half, so arrays do not grow forever. */
  private compact(queue: string, lane: Lane): void {
    if (lane.head === lane.items.length) {
      // An empty lane goes: when it fills again it starts level, not with old credit.
      this.lanes.delete(queue);
      return;
    }
    if (lane.head > 1024 && lane.head * 2 > lane.items.length) {
      lane.items = lane.items.slice(lane.head);
      lane.head = 0;
    }
  }
}

/** The throttle for `rate`: none, a new one, or the old one at the new rate (keeps its debt). */
function syncThrottle(t: Throttle | null, rate: Rate | null, now: () => number): Throttle | null {
  if (!rate) return null;
  if (!t) return new Throttle(rate, now);
  t.setRate(rate);
  return t;
}

/** The key of a ready queue: source and site. */
export function pathKey(source: string, site: string): string {
  return `${source}\u0000${site}`;
}
