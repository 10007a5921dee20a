/**
 * Operator controls: what the API and the CLI let an operator do to the traffic. List queues
 * and ready queues with their state and reason; pause and resume a queue, a site or a source;
 * make recipients due now; purge them (each gets an AdminAction record); move them to another
 * queue or pool; list and lift the actions of response rules.
 *
 * Recipients in a transaction at that moment are left to finish; everything else, in memory
 * or in the store, is covered.
 */
import type { Dispatcher, ReadyQueueState } from '../delivery/dispatcher.js';
import { GridpostError } from '../errors/catalogue.js';
import { adminRecord } from '../records/build.js';
import type { Scheduler } from '../scheduler/scheduler.js';
import { actionView, type ActionBoard, type ActionView } from '../shaping/actions.js';
import type { Pause, PauseKind, PolicyService } from '../shaping/policy-service.js';
import type { QueuedRecipient, RecipientFilter, Spool } from '../spool/spool.js';

/** Which recipients an operator action applies to (every field given must match). */
export interface Selection {
  queue?: string;
  domain?: string;
  /** A site name as the ready queues show it: last tried there, or of its known domains. */
  site?: string;
  messageId?: string;
  recipientId?: string;
}

/** A queue as the API shows it. */
export interface QueueState {
  name: string;
  weight: number;
  pool: string;
  /** Recipients waiting or in delivery. */
  recipients: number;
  /** Of those, how many are in memory (ready or in a transaction). */
  inMemory: number;
  state: 'active' | 'idle' | 'paused';
  reason: string | null;
  defined: boolean;
}

// Recipients per store transaction for purge and move: small enough that delivery commits
// are never held up for long behind one.
const BATCH = 1000;

/** The operator's controls over one engine. */
export class Controls {
  constructor(
    private readonly policy: PolicyService,
    private readonly board: ActionBoard,
    private readonly scheduler: Scheduler,
    private readonly dispatcher: Dispatcher,
    private readonly spool: Spool,
    private readonly now: () => number = Date.now,
  ) {}

  /** Every queue with its size and state. */
  queues(): QueueState[] {
    const p = this.policy.current;
    const sizes = this.spool.queueSizes();
    const names = new Set([
      ...p.queueNames(),
      ...[...sizes].filter(([, n]) => n > 0).map(([q]) => q),
    ]);
    return [...names].map((name) => {
      const q = p.queue(name);
      const recipients = sizes.get(name) ?? 0;
      const paused = this.policy.isPaused('queue', name);
      const state = paused ? 'paused' : recipients > 0 ? 'active' : 'idle';
      const reason = paused
        ? `paused by an operator since ${this.policy.pausesOf('queue').find((x) => x.name === name)?.since}`
        : null;
      return {
        name,
        weight: q.weight,
        pool: q.pool,
        recipients,
        inMemory: this.scheduler.heldOf(name),
        state,
        reason,
        defined: p.hasQueue(name),
      };
    });
  }

  readyQueues(limit?: number): ReadyQueueState[] {
    return this.dispatcher.readyQueueStates(limit);
  }

  /** Pauses a queue, site or source. */
  pause(kind: PauseKind, name: string): Pause {
    this.check(kind, name);
    const p = this.policy.pause(kind, name);
    if (kind === 'queue') {
      const ready = this.dispatcher.extract((r) => r.queue === name);
      for (const r of ready) this.scheduler.release(r, this.now());
    }
    return p;
  }

  /** Resumes it; what waited for it is due at once. */
  resume(kind: PauseKind, name: string): boolean {
    const had = this.policy.resume(kind, name);
    if (kind === 'site') {
      this.spool.retryNow(this.filter({ site: name }), this.now());
    }
    // A paused source's recipients went to the pool's other sources; those that had none
    // come back from the store within a minute.
    this.scheduler.wake();
    this.dispatcher.kick();
    return had;
  }

  pauses(): Pause[] {
    return (['queue', 'site', 'source'] as const).flatMap((k) => this.policy.pausesOf(k));
  }

  /** Makes the selected recipients waiting in the store due now; returns how many. */
  retryNow(sel: Selection): number {
    const n = this.spool.retryNow(this.filter(sel), this.now());
    this.scheduler.wake();
    return n;
  }

  /** Ends the selected recipients with an AdminAction record each; returns how many. */
  async purge(sel: Selection, reason = 'purged by an operator'): Promise<number> {
    const match = this.matcher(sel);
    const inMemory = this.dispatcher.extract((r, q) => match(r, q.site.name));
    for (const r of inMemory) {
      this.scheduler.finish(r, [adminRecord(r, 'purge', {}, reason, this.now())]);
    }
    let n = inMemory.length;
    const f = this.filter(sel);
    for (;;) {
      const batch = this.spool.selectWaiting(f, BATCH);
      if (batch.length === 0) break;
      await this.spool.adminBatch(batch, 'purge', {}, reason);
      n += batch.length;
    }
    return n;
  }

  /** Moves the selected recipients to another queue and/or pool; returns how many. */
  async move(
    sel: Selection,
    to: { queue?: string; pool?: string },
    reason = 'moved by an operator',
  ): Promise<number> {
    const p = this.policy.current;
    if (to.queue && !p.hasQueue(to.queue)) {
      throw new GridpostError('E_UNKNOWN_QUEUE', `to.queue: no queue "${to.queue}"`, {
        path: 'to.queue',
      });
    }
    if (to.pool && !p.pool(to.pool)) {
      throw new GridpostError('E_UNKNOWN_POOL', `to.pool: no pool "${to.pool}"`, {
        path: 'to.pool',
      });
    }
    const match = this.matcher(sel);
    const inMemory = this.dispatcher.extract((r, q) => match(r, q.site.name));
    await this.spool.adminBatch(inMemory, 'move', to, reason);
    for (const r of inMemory) this.scheduler.requeue(r, to);
    let n = inMemory.length;
    const f = this.filter(sel);
    for (;;) {
      const batch = this.spool.selectWaiting(f, BATCH);
      if (batch.length === 0) break;
      await this.spool.adminBatch(batch, 'move', to, reason);
      n += batch.length;
      f.afterId = batch[batch.length - 1]!.id;
    }
    this.scheduler.wake();
    return n;
  }

  actions(): ActionView[] {
    return this.board.list().map(actionView);
  }

  /** Lifts an action before its time. */
  lift(id: string): ActionView {
    const a = this.board.lift(id);
    if (!a) throw new GridpostError('E_NOT_FOUND', `no action ${id} in force`, { path: 'id' });
    this.spool.retryNow(this.filter({ site: a.site }), this.now());
    this.scheduler.wake();
    this.dispatcher.kick();
    return actionView(a);
  }

  private check(kind: PauseKind, name: string): void {
    const p = this.policy.current;
    if (kind === 'queue' && !p.hasQueue(name)) {
      throw new GridpostError('E_UNKNOWN_QUEUE', `no queue "${name}"`, { path: 'name' });
    }
    if (kind === 'source' && !p.source(name)) {
      throw new GridpostError('E_NOT_FOUND', `no source "${name}"`, { path: 'name' });
    }
  }

  private filter(sel: Selection): RecipientFilter {
    const f: RecipientFilter = {};
    if (sel.queue) f.queue = sel.queue;
    if (sel.messageId) f.messageId = sel.messageId;
    if (sel.recipientId) f.recipientId = sel.recipientId;
    if (sel.domain) f.domains = [sel.domain];
    if (sel.site) {
      f.site = sel.site;
      f.siteDomains = this.dispatcher.sites.domains(sel.site);
    }
    return f;
  }

  private matcher(sel: Selection): (r: QueuedRecipient, site: string) => boolean {
    return (r, site) =>
      (!sel.queue || r.queue === sel.queue) &&
      (!sel.domain || r.domain === sel.domain) &&
      (!sel.site || site === sel.site) &&
      (!sel.messageId || r.messageId === sel.messageId) &&
      (!sel.recipientId || r.id === sel.recipientId);
  }
}
