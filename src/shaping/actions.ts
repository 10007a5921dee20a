/**
 * The actions that response rules started: back-offs, suspensions and disabled sources, each
 * on one ready queue (egress source x site), with the reply that caused it and until when.
 * They end by themselves at `until`, or earlier when an operator lifts them. They are kept in
 * the store so that a restart does not hammer a receiver that had just said "slow down".
 *
 * An action never feeds itself: only replies from a remote server are matched against the
 * response rules, never the local deferrals an action causes (KumoMTA had to add
 * match_internal=false after suspensions extended themselves in a loop).
 */
import type { Statement } from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { formatReply, type SmtpReply } from '../delivery/reply.js';
import type { Db } from '../spool/store.js';
import type { ActionKind } from './policy-schema.js';

/** An action in force on one ready queue. */
export interface ActiveAction {
  id: string;
  kind: Exclude<ActionKind, 'bounce'>;
  source: string;
  site: string;
  /** The response rule that started it. */
  rule: string;
  /** The remote reply that triggered it, its destination domain and MX. */
  cause: { reply: SmtpReply; domain: string; mxHost?: string };
  since: number;
  until: number;
  /** How many matching replies arrived while it was in force (each extends it). */
  hits: number;
}

/** The action as the API shows it. */
export interface ActionView extends Omit<ActiveAction, 'since' | 'until'> {
  since: string;
  until: string;
  reason: string;
}

/** Keeps the actions in force, in memory and in the store. */
export class ActionBoard {
  private readonly byKey = new Map<string, ActiveAction>();
  private readonly stmt: Record<'insert' | 'remove' | 'all', Statement>;

  constructor(
    db: Db,
    private readonly now: () => number = Date.now,
  ) {
    db.exec(`CREATE TABLE IF NOT EXISTS actions (id TEXT PRIMARY KEY, until INTEGER NOT NULL,
      json TEXT NOT NULL)`);
    this.stmt = {
      insert: db.prepare('INSERT OR REPLACE INTO actions (id, until, json) VALUES (?, ?, ?)'),
      remove: db.prepare('DELETE FROM actions WHERE id = ? OR until <= ?'),
      all: db.prepare('SELECT json FROM actions WHERE until > ?'),
    };
    for (const row of this.stmt.all.all(this.now()) as { json: string }[]) {
      const a = JSON.parse(row.json) as ActiveAction;
      this.byKey.set(key(a.kind, a.source, a.site), a);
    }
  }

  /** Starts (or extends) an action; returns it. */
  start(a: Omit<ActiveAction, 'id' | 'since' | 'hits'>): ActiveAction {
    const k = key(a.kind, a.source, a.site);
    const existing = this.active(a.kind, a.source, a.site);
    const action: ActiveAction = existing
      ? { ...existing, until: Math.max(existing.until, a.until), cause: a.cause, rule: a.rule }
      : { ...a, id: randomUUID(), since: this.now(), hits: 0 };
    action.hits++;
    this.byKey.set(k, action);
    this.stmt.insert.run(action.id, action.until, JSON.stringify(action));
    return action;
  }

  /** The action of this kind in force on (source, site), if any. */
  active(kind: ActiveAction['kind'], source: string, site: string): ActiveAction | undefined {
    const k = key(kind, source, site);
    const a = this.byKey.get(k);
    if (!a) return undefined;
    if (a.until > this.now()) return a;
    this.byKey.delete(k);
    this.stmt.remove.run(a.id, this.now());
    return undefined;
  }

  /** Ends an action before its time; returns it, or undefined when no such action is in force. */
  lift(id: string): ActiveAction | undefined {
    for (const [k, a] of this.byKey) {
      if (a.id !== id) continue;
      this.byKey.delete(k);
      this.stmt.remove.run(id, this.now());
      return a.until > this.now() ? a : undefined;
    }
    return undefined;
  }

  /** Every action in force. */
  list(): ActiveAction[] {
    const now = this.now();
    return [...this.byKey.values()].filter((a) => a.until > now);
  }
}

/** An action as the API and CLI show it. */
export function actionView(a: ActiveAction): ActionView {
  return {
    ...a,
    since: new Date(a.since).toISOString(),
    until: new Date(a.until).toISOString(),
    reason: `${a.kind} by rule ${a.rule} after "${formatReply(a.cause.reply)}" from ${
      a.cause.mxHost ?? a.cause.domain
    }`,
  };
}

function key(kind: string, source: string, site: string): string {
  return `${kind}\u0000${source}\u0000${site}`;
}

/**
 * Counts matching replies per rule and ready queue for rules with a threshold trigger: an
 * action starts only once `count` replies arrived within `within` ms. Keeps the last `count`
 * times per key, so memory is bounded by rules x ready queues x count.
 */
export class TriggerCounter {
  private readonly hits = new Map<string, number[]>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Notes one matching reply; returns whether the threshold is reached now. */
  hit(rule: string, source: string, site: string, t: { count: number; within: number }): boolean {
    const k = `${rule}\u0000${source}\u0000${site}`;
    const now = this.now();
    const times = (this.hits.get(k) ?? []).filter((at) => at > now - t.within);
    times.push(now);
    if (times.length > t.count) times.splice(0, times.length - t.count);
    if (times.length >= t.count) {
      this.hits.delete(k);
      return true;
    }
    this.hits.set(k, times);
    return false;
  }
}
