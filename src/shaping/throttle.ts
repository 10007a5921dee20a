/**
 * A rate limiter by the generic cell rate algorithm (GCRA, as in ATM networks and redis-cell):
 * one number per limiter, the theoretical arrival time (TAT) of the next event. An event (of
 * any cost n) is allowed when now >= TAT - tolerance, and then pushes TAT by n intervals. With
 * a tolerance of one interval the long-run rate is exact and a burst is at most one event
 * ahead of the schedule, which is what receivers that count per second or minute expect.
 */
import { intervalMs, type Rate } from './rate.js';

// Limitation: the TAT lives in memory, so after a restart a throttle allows its next event at
// once: one event early per ready queue, never a burst. Limits are per engine; several
// engines sharing a source each apply the full rate (a cluster-wide throttle needs Redis).

/** Limits events to a rate; clock injectable. */
export class Throttle {
  private tat = 0;
  private interval: number;

  constructor(
    private rate: Rate,
    private readonly now: () => number = Date.now,
  ) {
    this.interval = intervalMs(rate);
  }

  /** The rate this throttle applies. */
  get current(): Rate {
    return this.rate;
  }

  /** Changes the rate, keeping the debt already owed (a live policy change). */
  setRate(rate: Rate): void {
    if (rate.count === this.rate.count && rate.perMs === this.rate.perMs) return;
    this.rate = rate;
    this.interval = intervalMs(rate);
  }

  /**
   * Milliseconds until the next event may happen (0 = now). The tolerance of one interval
   * means a timer that fires a little late loses no time: TAT advances from where it was, not
   * from the late clock, so the long-run rate stays exact.
   */
  waitMs(): number {
    const now = this.now();
    return Math.max(0, this.tat - this.interval - now);
  }

  /** Takes an event of `cost` if allowed now; returns whether it was. */
  take(cost = 1): boolean {
    if (this.waitMs() > 0) return false;
    const now = this.now();
    this.tat = Math.max(this.tat, now) + cost * this.interval;
    return true;
  }
}
