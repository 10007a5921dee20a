/**
 * Egress: which source of its pool a recipient leaves from. The pool comes from the injection
 * call (or an operator's move), else from the recipient's queue. The choice is weighted and
 * deterministic per message and attempt, so the recipients of one message to one site take
 * the same source (one transaction) and a retry may take another one when the pool rotates.
 */
import type { Policy } from '../shaping/policy.js';
import { DEFAULT_NAME } from '../shaping/policy.js';
import type { QueuedRecipient } from '../spool/spool.js';

/** The choice for one recipient: a source, or why none is usable now. */
export type SourceChoice =
  { ok: true; source: string } | { ok: false; reason: 'unusable' | 'empty' };

/** The pool a recipient uses. */
export function poolOf(policy: Policy, r: QueuedRecipient): string {
  const name = r.pool ?? policy.queue(r.queue).pool;
  return policy.pool(name) ? name : DEFAULT_NAME;
}

/** Picks a source for `r` among those of its pool that `usable` allows. */
export function chooseSource(
  policy: Policy,
  r: QueuedRecipient,
  usable: (source: string) => boolean,
): SourceChoice {
  const pool = policy.pool(poolOf(policy, r))!;
  const members = Object.entries(pool.sources).filter(([s]) => policy.source(s));
  if (members.length === 0) return { ok: false, reason: 'empty' };
  const open = members.filter(([s]) => usable(s));
  if (open.length === 0) return { ok: false, reason: 'unusable' };
  const last = r.source;
  if (last && !pool.rotateOnRetry && open.some(([s]) => s === last)) {
    return { ok: true, source: last };
  }
  // Rotating: a retry prefers another source than the one that just failed.
  const others = last && r.attempts > 0 ? open.filter(([s]) => s !== last) : open;
  const choice = weighted(others.length ? others : open, `${r.messageId}/${r.attempts}`);
  return { ok: true, source: choice };
}

function weighted(members: [string, number][], key: string): string {
  const total = members.reduce((s, [, w]) => s + w, 0);
  let point = hash(key) % total;
  for (const [name, w] of members) {
    if (point < w) return name;
    point -= w;
  }
  return members[0]![0];
}

/** FNV-1a, 32 bits: cheap and well spread over message ids. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}
