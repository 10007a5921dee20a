// Running an async operation with a fixed number in flight, as a benchmark row.
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** Operations a second, and the event loop's delay meanwhile (ms) when it could be sampled. */
export interface ConcurrentRow {
  perSecond: number;
  loopP99Ms?: number;
  loopMaxMs?: number;
}

/** Keeps `inFlight` calls of `one` running for `ms`; measures the event loop meanwhile. */
export async function runConcurrent(
  one: () => Promise<unknown>,
  inFlight: number,
  ms: number,
): Promise<ConcurrentRow> {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  let n = 0;
  const started = performance.now();
  const lane = async () => {
    while (performance.now() - started < ms) {
      await one();
      n++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  delay.disable();
  const perSecond = n / ((performance.now() - started) / 1000);
  // A method that never leaves the event loop gives the histogram no turn to sample: the loop
  // was busy throughout, which is no delay figure at all.
  if (delay.count === 0) return { perSecond };
  return { perSecond, loopP99Ms: delay.percentile(99) / 1e6, loopMaxMs: delay.max / 1e6 };
}
