/**
 * The state of a ready queue as operators see it (API, CLI, console): running, throttled,
 * backing off, suspended, disabled, held or paused, with the reason, since and until when, and
 * the limits in force.
 */
import type { ActiveAction } from '../shaping/actions.js';
import { actionView } from '../shaping/actions.js';
import type { EffectiveSettings } from '../shaping/policy.js';
import type { Rate } from '../shaping/rate.js';
import type { ReadyQueue } from './ready-queue.js';
import { formatReply } from './reply.js';

/** The limits a ready queue applies now. */
export interface Limits {
  maxConnections: number;
  maxMessagesPerConnection: number;
  maxRecipientsPerTransaction: number;
  messageRate: Rate | null;
  connectionRate: Rate | null;
  idleTimeout: number;
}

/** The settings, or their backoff values while a back-off action is in force. */
export function effectiveLimits(s: EffectiveSettings, backingOff: boolean): Limits {
  const base: Limits = {
    maxConnections: s.maxConnections,
    maxMessagesPerConnection: s.maxMessagesPerConnection,
    maxRecipientsPerTransaction: s.maxRecipientsPerTransaction,
    messageRate: s.messageRate,
    connectionRate: s.connectionRate,
    idleTimeout: s.idleTimeout,
  };
  if (!backingOff) return base;
  const b = s.backoff;
  return {
    ...base,
    maxConnections: Math.min(b.maxConnections ?? base.maxConnections, base.maxConnections),
    maxMessagesPerConnection: b.maxMessagesPerConnection ?? base.maxMessagesPerConnection,
    messageRate: b.messageRate !== undefined ? b.messageRate : base.messageRate,
    connectionRate: b.connectionRate !== undefined ? b.connectionRate : base.connectionRate,
  };
}

/**
 * Recipients in one transaction. Under a message rate, at most one second's worth (at least
 * one): the throttle lets a transaction of any size through at once and only then makes the
 * next one wait, so 100 recipients at "20/s" would be a burst of five seconds' worth, which a
 * receiver counting per second refuses, and which holds back a transactional message for those
 * five seconds.
 */
export function transactionLimit(limits: Limits): number {
  const r = limits.messageRate;
  if (!r) return limits.maxRecipientsPerTransaction;
  const perSecond = Math.max(1, Math.floor((r.count * 1000) / r.perMs));
  return Math.min(limits.maxRecipientsPerTransaction, perSecond);
}

export type ReadyState =
  'running' | 'idle' | 'throttled' | 'backoff' | 'suspended' | 'disabled' | 'held' | 'paused';

/** A ready queue as the API shows it. */
export interface ReadyQueueState {
  source: string;
  site: string;
  provider: string | null;
  /** Some of the destination domains seen for this site. */
  domains: string[];
  state: ReadyState;
  reason: string | null;
  until?: string;
  /** The action behind the state, when a response rule caused it. */
  action?: ReturnType<typeof actionView>;
  ready: number;
  readyByQueue: Record<string, number>;
  sessions: number;
  limits: {
    maxConnections: number;
    maxMessagesPerConnection: number;
    maxRecipientsPerTransaction: number;
    messageRate: string | null;
    connectionRate: string | null;
  };
  /** The shaping rules that contributed, least specific first. */
  rules: string[];
  /** Recipients given back to the store because the ready queue was full, when and why. */
  heldBack?: { recipients: number; last: string; reason: string };
}

/** What the dispatcher knows about a ready queue's pauses and actions. */
export interface StateInputs {
  paused: boolean;
  backoff?: ActiveAction;
  suspend?: ActiveAction;
  disabled?: ActiveAction;
}

/** Computes the state shown for one ready queue. */
export function readyQueueState(
  q: ReadyQueue,
  s: EffectiveSettings,
  st: StateInputs,
  now: number,
  domains: string[] = [],
): ReadyQueueState {
  const limits = effectiveLimits(s, !!st.backoff);
  const base = {
    source: q.source,
    site: q.site.name,
    provider: q.site.provider,
    domains,
    ready: q.size,
    readyByQueue: q.sizes(),
    sessions: q.sessions,
    limits: {
      maxConnections: limits.maxConnections,
      maxMessagesPerConnection: limits.maxMessagesPerConnection,
      maxRecipientsPerTransaction: limits.maxRecipientsPerTransaction,
      messageRate: limits.messageRate?.text ?? null,
      connectionRate: limits.connectionRate?.text ?? null,
    },
    rules: s.rules,
    ...(q.heldBack.recipients > 0
      ? {
          heldBack: {
            recipients: q.heldBack.recipients,
            last: new Date(q.heldBack.at).toISOString(),
            reason: q.heldBack.reason,
          },
        }
      : {}),
  };
  const fromAction = (state: ReadyState, a: ActiveAction): ReadyQueueState => {
    const view = actionView(a);
    return { ...base, state, reason: view.reason, until: view.until, action: view };
  };
  if (st.paused) return { ...base, state: 'paused', reason: 'paused by an operator' };
  if (st.suspend) return fromAction('suspended', st.suspend);
  if (st.disabled) return fromAction('disabled', st.disabled);
  if (q.heldUntil > now) {
    const reason = q.heldReply ? formatReply(q.heldReply) : 'held';
    return { ...base, state: 'held', reason, until: new Date(q.heldUntil).toISOString() };
  }
  if (st.backoff) return fromAction('backoff', st.backoff);
  if (q.waitReason && q.size > 0) return { ...base, state: 'throttled', reason: q.waitReason };
  return { ...base, state: q.sessions > 0 ? 'running' : 'idle', reason: null };
}
