/**
 * Helpers of the traffic-shaping scenarios: HTTP injection in batches, and the figures a
 * receiver's log gives (connections open at once per source, arrival rate).
 */
import assert from 'node:assert/strict';
import type { ConnectionRecord } from '../../src/testworld/receiver.js';
import { api, simpleMessage, type TestEngine } from './harness.js';

/** A message for POST /api/v1/messages. */
export interface Injection {
  from?: string;
  to: string[];
  queue?: string;
  pool?: string;
  subject?: string;
}

// Messages per HTTP call; the API takes up to 1000, fewer keeps each JSON body small.
const BATCH = 100;

/** Injects messages over HTTP, BATCH per call; returns their message ids in order. */
export async function injectHttp(t: TestEngine, msgs: Injection[]): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < msgs.length; i += BATCH) {
    const body = { messages: msgs.slice(i, i + BATCH).map(toApi) };
    const res = await api(t, 'POST', '/api/v1/messages', body);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    for (const m of res.body.messages as { id: string }[]) ids.push(m.id);
  }
  return ids;
}

function toApi(m: Injection) {
  const from = m.from ?? 'sender@sender.test';
  return {
    envelope: { from, to: m.to },
    raw: simpleMessage(from, m.to[0]!, m.subject ?? 'shaping'),
    ...(m.queue ? { queue: m.queue } : {}),
    ...(m.pool ? { pool: m.pool } : {}),
  };
}

/** `n` one-recipient messages to user<i>@domain. */
export function oneEach(domain: string, n: number, extra: Partial<Injection> = {}): Injection[] {
  return Array.from({ length: n }, (_, i) => ({ to: [`user${i}@${domain}`], ...extra }));
}

/** The most connections open at once, per remote (source) address. */
export function maxConcurrentBySource(conns: ConnectionRecord[]): Map<string, number> {
  const events: { at: number; d: number; src: string }[] = [];
  for (const c of conns) {
    events.push({ at: c.openedAt, d: 1, src: c.remoteAddress });
    events.push({ at: c.closedAt ?? Infinity, d: -1, src: c.remoteAddress });
  }
  // Closes before opens at the same millisecond: a reused slot is not an overlap.
  events.sort((a, b) => a.at - b.at || a.d - b.d);
  const open = new Map<string, number>();
  const peak = new Map<string, number>();
  for (const e of events) {
    const n = (open.get(e.src) ?? 0) + e.d;
    open.set(e.src, n);
    peak.set(e.src, Math.max(peak.get(e.src) ?? 0, n));
  }
  return peak;
}

/** Events per second over a series of times in ms: (n - 1) / (last - first). */
export function ratePerSecond(times: number[]): number {
  const sorted = [...times].sort((a, b) => a - b);
  assert.ok(sorted.length >= 2, 'a rate needs two events');
  return ((sorted.length - 1) * 1000) / (sorted.at(-1)! - sorted[0]!);
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
