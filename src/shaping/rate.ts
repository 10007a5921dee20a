/** Rates in policy: "100/s", "6000/min", "500/h", "10000/day" (also "/sec", "/hour", "/d"). */

/** A rate: `count` events per `perMs` milliseconds. */
export interface Rate {
  count: number;
  perMs: number;
  /** As written, for status and export. */
  text: string;
}

const PERIODS: Record<string, number> = {
  s: 1000,
  sec: 1000,
  second: 1000,
  m: 60_000,
  min: 60_000,
  minute: 60_000,
  h: 3_600_000,
  hr: 3_600_000,
  hour: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
};

const PATTERN = /^\s*(\d+(?:\.\d+)?)\s*\/\s*([a-z]+)\s*$/i;

/** Parses a rate, or returns null when the text is not one. */
export function parseRate(text: string): Rate | null {
  const m = PATTERN.exec(text);
  if (!m) return null;
  const count = Number(m[1]);
  const perMs = PERIODS[m[2]!.toLowerCase()];
  if (!perMs || !(count > 0)) return null;
  return { count, perMs, text: text.trim() };
}

/** Milliseconds between two events at this rate. */
export function intervalMs(r: Rate): number {
  return r.perMs / r.count;
}
