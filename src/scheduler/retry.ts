/** Retry times: the queue's schedule, with jitter, never past the recipient's expiry. */
import type { QueueConfig } from '../shaping/policy-schema.js';

/**
 * When the next attempt is due after `attempts` failed ones (1-based). The schedule's last
 * delay repeats. Jitter (a fraction, e.g. 0.1 = ±10 %) spreads retries so that recipients
 * deferred together by one outage do not all come back in the same second.
 */
export function nextAttemptAt(
  now: number,
  attempts: number,
  queue: QueueConfig,
  random: () => number = Math.random,
): number {
  const schedule = queue.retry;
  const base = schedule[Math.min(attempts, schedule.length) - 1] ?? schedule[0] ?? 60_000;
  const factor = 1 + (random() * 2 - 1) * queue.jitter;
  return now + Math.max(0, Math.round(base * factor));
}
