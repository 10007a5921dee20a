/** Durations in configuration: a number of seconds, or a string like "90s", "5m", "2h", "5d". */
import { z } from 'zod';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PATTERN = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/;

/** Parses a duration to milliseconds, or returns null when it is not one. */
export function parseDurationMs(value: string | number): number | null {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value * 1000 : null;
  const m = PATTERN.exec(value.trim());
  if (!m) return null;
  return Math.round(Number(m[1]) * (UNITS[m[2] ?? 's'] ?? 1000));
}

/** A duration in a configuration or policy file, parsed to milliseconds. */
export const durationSchema = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const ms = parseDurationMs(v);
  if (ms === null) {
    ctx.addIssue({ code: 'custom', message: 'expected seconds or a duration like "30s", "5m"' });
    return z.NEVER;
  }
  return ms;
});
