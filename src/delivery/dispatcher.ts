/**
 * The dispatcher: takes ready recipients, groups them per destination domain, opens SMTP
 * sessions within the connection limits (per destination and in total), reuses each session
 * for further transactions to the same destination, and reports one outcome per recipient.
 *
 * When a destination fails as a whole (no host accepts a connection, a temporary DNS failure,
 * or a 421 from the server), it is held for `delivery.holdAfterFailure`: what is ready for it
 * is deferred with the reason, new arrivals are deferred at once, and no connection is tried
 * until the hold ends (Postfix calls this a dead destination). Each deferred recipient comes
 * back on its queue's retry schedule.
 *
 * Limitation: limits and holds are per destination domain, not per site (MX rollup), and
 * there is one egress source; shaping rules, sites and pools replace these defaults.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { AttemptDetails } from '../records/types.js';
import type { Outcome } from '../scheduler/scheduler.js';
import type { QueuedRecipient } from '../spool/spool.js';
import { Destination } from './destination.js';
import { formatReply, localReply, replyClass, type SmtpReply } from './reply.js';
import type { Router } from './route.js';
import { openSession, type SessionOptions, type SmtpSession } from './smtp-client.js';

export interface DispatcherOptions {
  delivery: Config['delivery'];
  helo: string;
  router: Router;
  /** The stored body of a message. */
  body: (messageId: string) => Buffer | null;
  onOutcome: (r: QueuedRecipient, o: Outcome) => void;
  onExpired: (r: QueuedRecipient) => void;
  log: Logger;
  now?: () => number;
  /** Opens a session; injectable so tests can observe or replace the socket layer. */
  open?: typeof openSession;
}

/** Hands ready recipients to SMTP sessions. */
export class Dispatcher {
  private readonly destinations = new Map<string, Destination>();
  /** Destinations that want a session but hit the total limit, in arrival order. */
  private readonly starved = new Set<Destination>();
  private sessions = 0;
  private readonly live = new Set<SmtpSession>();
  private readonly now: () => number;
  private readonly open: typeof openSession;
  private readonly sweeper: NodeJS.Timeout;
  private stopping = false;

  constructor(private readonly opts: DispatcherOptions) {
    this.now = opts.now ?? Date.now;
    this.open = opts.open ?? openSession;
    // Once a second, expire ready recipients that waited in memory past their maximum age
    // (a destination that accepts nothing would otherwise hold them).
    this.sweeper = setInterval(() => this.sweep(), 1000);
    this.sweeper.unref();
  }

  /** Open sessions now. */
  get openSessions(): number {
    return this.sessions;
  }

  /** Recipients ready in memory, waiting for a session. */
  get readyCount(): number {
    let n = 0;
    for (const d of this.destinations.values()) n += d.size;
    return n;
  }

  /**
   * The busiest destinations now (most ready recipients first, held ones always included),
   * with their state and, when held, until when and why.
   */
  destinationStates(limit = 50): DestinationState[] {
    const now = this.now();
    const all = [...this.destinations.values()].map((d) => stateOf(d, now));
    all.sort((a, b) => Number(!!b.heldUntil) - Number(!!a.heldUntil) || b.ready - a.ready);
    return all.slice(0, limit);
  }

  /** Takes a recipient that is due now. */
  enqueue(r: QueuedRecipient): void {
    if (this.stopping) return;
    let d = this.destinations.get(r.domain);
    if (!d) {
      d = new Destination(r.domain);
      this.destinations.set(r.domain, d);
    }
    if (d.heldUntil > this.now()) this.deferHeld(d, r);
    else if (!d.push(r)) this.maybeOpen(d);
  }

  /** Closes every session and stops taking work. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.sweeper);
    for (const d of this.destinations.values()) d.releaseIdle();
    await Promise.all([...this.live].map((s) => s.close()));
  }

  /** Opens sessions to `d` while it has more ready recipients than sessions, within limits. */
  private maybeOpen(d: Destination): void {
    const perDestination = this.opts.delivery.maxConnectionsPerDestination;
    while (!this.stopping && d.sessions < Math.min(perDestination, d.size)) {
      if (this.sessions >= this.opts.delivery.maxConnectionsTotal) {
        this.starved.add(d);
        return;
      }
      d.sessions++;
      this.sessions++;
      void this.runSession(d).finally(() => this.sessionEnded(d));
    }
  }

  private sessionEnded(d: Destination): void {
    d.sessions--;
    this.sessions--;
    if (this.isIdle(d)) this.destinations.delete(d.domain);
    else this.maybeOpen(d);
    for (const s of this.starved) {
      if (this.sessions >= this.opts.delivery.maxConnectionsTotal) break;
      this.starved.delete(s);
      this.maybeOpen(s);
    }
  }

  /** One session's life: route, connect, send transactions while there is work, quit. */
  private async runSession(d: Destination): Promise<void> {
    const connected = await this.connect(d);
    if (!connected) return;
    const { session } = connected;
    this.live.add(session);
    try {
      await this.sendWhileWork(d, session);
    } finally {
      this.live.delete(session);
      await session.close();
    }
  }

  /** Finds a hop that accepts a session, or fails every ready recipient of `d`. */
  private async connect(d: Destination): Promise<{ session: SmtpSession } | null> {
    const plan = await this.opts.router.plan(d.domain);
    if (plan.kind === 'fail') {
      this.failAll(d, plan.reply, { stage: 'dns' });
      if (!plan.permanent) this.hold(d, plan.reply, { stage: 'dns' });
      return null;
    }
    let last: { reply: SmtpReply; stage: string; hop?: { name: string; ip: string } } = {
      reply: localReply(451, '4.4.4', `no MX host of ${d.domain} has an address`),
      stage: 'connect',
    };
    for (const hop of plan.hops) {
      if (this.stopping) return null;
      const result = await this.open(this.sessionOptions(hop));
      if (result.ok) return { session: result.session };
      last = { reply: result.reply, stage: result.stage, hop };
      this.opts.log.debug({ domain: d.domain, hop, reply: result.reply }, 'hop failed');
    }
    const where = { stage: last.stage, mxHost: last.hop?.name, mxIp: last.hop?.ip };
    this.failAll(d, last.reply, where);
    this.hold(d, last.reply, where);
    return null;
  }

  private sessionOptions(hop: { name: string; ip: string; port: number }): SessionOptions {
    const t = this.opts.delivery.timeouts;
    return {
      ip: hop.ip,
      port: hop.port,
      mxHost: hop.name,
      localAddress: this.opts.delivery.localAddress,
      helo: this.opts.helo,
      tls: this.opts.delivery.tls,
      timeouts: { ...t },
    };
  }

  /** Sends transactions on `session` until it is spent, broken or idle for too long. */
  private async sendWhileWork(d: Destination, s: SmtpSession): Promise<void> {
    const limits = this.opts.delivery;
    while (!this.stopping && s.usable && s.transactions < limits.maxMessagesPerConnection) {
      const batch = d.take(limits.maxRecipientsPerTransaction, this.now(), this.opts.onExpired);
      if (batch.length === 0) {
        if (!(await d.waitForWork(limits.idleTimeout))) return;
        continue;
      }
      const siteReply = await this.sendBatch(s, batch);
      if (siteReply) this.hold(d, siteReply, { stage: 'mail', mxHost: s.mxHost, mxIp: s.remoteIp });
    }
  }

  /**
   * One transaction: the recipients of one message on an open session. Returns the server's
   * 421 when it closed the session (a refusal of the whole destination for now).
   */
  private async sendBatch(s: SmtpSession, batch: QueuedRecipient[]): Promise<SmtpReply | null> {
    const first = batch[0]!;
    const body = this.opts.body(first.messageId);
    if (!body) {
      // The message left the store while its recipients were ready (it was purged).
      this.opts.log.warn({ messageId: first.messageId }, 'message body missing; skipped');
      return null;
    }
    const envelope = {
      from: first.sender,
      recipients: batch.map((r) => r.address),
      smtputf8: batch.some((r) => !isAscii(r.address)) || !isAscii(first.sender),
    };
    const startedAt = this.now();
    const result = await s.send(envelope, body);
    const hop = { mxHost: s.mxHost, mxIp: s.remoteIp, localIp: s.localAddress, tls: s.tls };
    result.recipients.forEach((res, i) => {
      const r = batch[i]!;
      const details: AttemptDetails = {
        attempt: r.attempts + 1,
        ...hop,
        stage: result.failure?.stage ?? stageOf(res.reply, result),
        reply: res.reply,
        timings: {
          sinceReceptionMs: this.now() - r.receivedAt,
          queuedMs: startedAt - r.readyAt,
          transactionMs: this.now() - startedAt,
        },
      };
      this.report(r, res.reply, details);
    });
    return result.recipients.find((res) => res.reply.code === 421)?.reply ?? null;
  }

  /** Holds `d` (see the file comment): defers what is ready and opens nothing until it ends. */
  private hold(d: Destination, reply: SmtpReply, where: Partial<AttemptDetails>): void {
    const ms = this.opts.delivery.holdAfterFailure;
    if (ms <= 0) return;
    d.heldUntil = this.now() + ms;
    const text = `delivery to ${d.domain} held for ${Math.round(ms / 1000)}s after: ${reply.text}`;
    d.heldReply = { ...reply, text };
    d.heldWhere = where;
    this.failAll(d, d.heldReply, { ...where, stage: 'held' });
    this.opts.log.info({ domain: d.domain, reply, heldMs: ms }, 'destination held');
  }

  /** Defers a recipient that arrived while its destination is held. */
  private deferHeld(d: Destination, r: QueuedRecipient): void {
    const now = this.now();
    const reply = d.heldReply ?? localReply(451, '4.4.1', `delivery to ${d.domain} held`);
    this.report(r, reply, {
      attempt: r.attempts + 1,
      ...d.heldWhere,
      stage: 'held',
      reply,
      timings: { sinceReceptionMs: now - r.receivedAt, queuedMs: now - r.readyAt },
    });
  }

  private report(r: QueuedRecipient, reply: SmtpReply, details: AttemptDetails): void {
    const cls = replyClass(reply);
    const kind = cls === 'success' ? 'delivered' : cls === 'transient' ? 'transient' : 'permanent';
    this.opts.onOutcome(r, { kind, details });
  }

  /** Fails every ready recipient of `d` with one reply (DNS failure, no host reachable). */
  private failAll(d: Destination, reply: SmtpReply, where: Partial<AttemptDetails>): void {
    const now = this.now();
    for (const r of d.drain()) {
      this.report(r, reply, {
        attempt: r.attempts + 1,
        ...where,
        reply,
        timings: { sinceReceptionMs: now - r.receivedAt, queuedMs: now - r.readyAt },
      });
    }
  }

  /** A destination with nothing ready, no session and no hold can be forgotten. */
  private isIdle(d: Destination): boolean {
    return d.size === 0 && d.sessions === 0 && d.heldUntil <= this.now();
  }

  /** Expires ready recipients past their age, and forgets idle destinations (holds ended). */
  private sweep(): void {
    const now = this.now();
    for (const d of this.destinations.values()) {
      d.sweepExpired(now, this.opts.onExpired);
      if (this.isIdle(d)) this.destinations.delete(d.domain);
    }
  }
}

/** A destination as the status shows it. */
export interface DestinationState {
  domain: string;
  state: 'active' | 'idle' | 'held';
  ready: number;
  sessions: number;
  heldUntil?: string;
  reason?: string;
}

function stateOf(d: Destination, now: number): DestinationState {
  const base = { domain: d.domain, ready: d.size, sessions: d.sessions };
  if (d.heldUntil > now) {
    const reason = d.heldReply ? formatReply(d.heldReply) : undefined;
    return { ...base, state: 'held', heldUntil: new Date(d.heldUntil).toISOString(), reason };
  }
  return { ...base, state: d.sessions > 0 ? 'active' : 'idle' };
}

/** Which step a per-recipient reply came from: MAIL, RCPT or the final dot. */
function stageOf(reply: SmtpReply, r: { mail: SmtpReply; data?: SmtpReply }): string {
  if (reply === r.data) return 'data';
  return reply === r.mail ? 'mail' : 'rcpt';
}

function isAscii(s: string): boolean {
  return !/[^\x00-\x7f]/.test(s);
}
