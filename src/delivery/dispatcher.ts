/**
 * The dispatcher: takes due recipients, resolves their site (MX rollup), picks an egress
 * source from their pool, and puts them in the ready queue of that source and site. It opens
 * SMTP sessions on each ready queue within its shaping limits (connections, connection rate,
 * message rate, messages per connection) and the engine's total, reuses each session for
 * further transactions, and reports one outcome per recipient.
 *
 * Remote replies go through the response rules: a match can back the ready queue off (its
 * backoff limits apply), suspend it (what is ready is deferred until the suspension ends),
 * disable the source at that site (what is ready moves to the pool's other sources) or bounce
 * the recipient now. When a site fails as a whole from one source (no host accepts a
 * connection, a temporary DNS failure, a 421 from the server), that ready queue is held for
 * `delivery.holdAfterFailure`: what is ready for it is deferred with the reason and no
 * connection is tried until the hold ends (Postfix calls this a dead destination).
 *
 * Every pause and slowdown is visible in readyQueueStates() with its reason.
 *
 * Limitation: connection limits and rates are per engine; engines that share egress sources
 * each apply them in full.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { Suppression } from '../feedback/suppression.js';
import type { AttemptDetails } from '../records/types.js';
import type { Outcome } from '../scheduler/scheduler.js';
import { TriggerCounter, type ActionBoard, type ActiveAction } from '../shaping/actions.js';
import type { CompiledResponseRule, Policy } from '../shaping/policy.js';
import type { PolicyService } from '../shaping/policy-service.js';
import type { QueuedRecipient } from '../spool/spool.js';
import { chooseSource, poolOf } from './egress.js';
import { ReadyQueue, pathKey } from './ready-queue.js';
import { formatReply, isRemote, localReply, replyClass, type SmtpReply } from './reply.js';
import type { Hop, Router } from './route.js';
import { SiteResolver, type Site } from './site.js';
import { openSession, type SessionOptions, type SmtpSession } from './smtp-client.js';
import {
  effectiveLimits,
  readyQueueState,
  transactionLimit,
  type ReadyQueueState,
} from './ready-state.js';

export type { ReadyQueueState } from './ready-state.js';

export interface DispatcherOptions {
  delivery: Config['delivery'];
  router: Router;
  policy: PolicyService;
  actions: ActionBoard;
  /** How long a site lookup is reused (the DNS cache time), in ms. */
  siteCacheMs: number;
  /** The stored body of a message. */
  body: (messageId: string) => Buffer | null;
  onOutcome: (r: QueuedRecipient, o: Outcome) => void;
  onExpired: (r: QueuedRecipient) => void;
  /**
   * Whether an address is on the suppression list, checked before every attempt; a recipient
   * that is goes to `onSuppressed` instead of its ready queue.
   */
  suppressed?: (r: QueuedRecipient) => Suppression | undefined;
  onSuppressed?: (r: QueuedRecipient, s: Suppression) => void;
  /**
   * The signed return path (VERP) of a recipient, when bounces.domain is set. Each recipient
   * then has its own envelope sender, so each goes in a transaction of its own.
   */
  returnPath?: (r: QueuedRecipient) => string;
  /** Gives an untried recipient back to the store until `at` (paused, ready queue full). */
  onRelease: (r: QueuedRecipient, at: number) => void;
  log: Logger;
  now?: () => number;
  /** Opens a session; injectable so tests can observe or replace the socket layer. */
  open?: typeof openSession;
}

// How long an untried recipient whose path is paused waits in the store before it is looked
// at again, in ms. Resuming makes the paused ones due at once, so this only bounds how stale
// a forgotten pause can make the memory picture.
const PAUSED_RECHECK_MS = 60_000;
// Recipients over a ready queue's maxReady go back to the store for about the time the ready
// queue needs to send what it holds, within these bounds (ms), with ±50 % spread.
const OVERFLOW_MIN_MS = 1_000;
const OVERFLOW_MAX_MS = 60_000;
// A recipient deferred by a suspension comes back within this spread after it ends (ms), so a
// whole backlog does not arrive in the same millisecond.
const RESUME_SPREAD_MS = 5_000;

/** Hands ready recipients to SMTP sessions, by ready queue. */
export class Dispatcher {
  private readonly queues = new Map<string, ReadyQueue>();
  /** Ready queues that want a session but hit the total limit, in arrival order. */
  private readonly starved = new Set<ReadyQueue>();
  private sessions = 0;
  private resolving = 0;
  private readonly live = new Set<SmtpSession>();
  private readonly now: () => number;
  private readonly open: typeof openSession;
  private readonly sweeper: NodeJS.Timeout;
  readonly sites: SiteResolver;
  private readonly triggers: TriggerCounter;
  private stopping = false;

  constructor(private readonly opts: DispatcherOptions) {
    this.now = opts.now ?? Date.now;
    this.open = opts.open ?? openSession;
    this.sites = new SiteResolver(opts.router, () => this.policy, {
      cacheMs: opts.siteCacheMs,
      failureHoldMs: opts.delivery.holdAfterFailure,
      now: this.now,
    });
    this.sites.learnRuleDomains();
    this.triggers = new TriggerCounter(this.now);
    opts.policy.onChange(() => this.policyChanged());
    // Once a second, expire ready recipients that waited in memory past their maximum age
    // (a ready queue that sends nothing would otherwise hold them).
    this.sweeper = setInterval(() => this.sweep(), 1000);
    this.sweeper.unref();
  }

  private get policy(): Policy {
    return this.opts.policy.current;
  }

  /** Open sessions now. */
  get openSessions(): number {
    return this.sessions;
  }

  /** Recipients ready in memory, waiting for a session (or for their site's lookup). */
  get readyCount(): number {
    let n = this.resolving;
    for (const q of this.queues.values()) n += q.size;
    return n;
  }

  /** Every ready queue with its state and the reason for it; busiest and blocked first. */
  readyQueueStates(limit = 200): ReadyQueueState[] {
    const now = this.now();
    const all = [...this.queues.values()].map((q) =>
      readyQueueState(
        q,
        this.settingsOf(q),
        this.stateInputs(q),
        now,
        this.sites.domains(q.site.name).slice(0, 10),
      ),
    );
    all.sort(
      (a, b) => Number(b.state !== 'running') - Number(a.state !== 'running') || b.ready - a.ready,
    );
    return all.slice(0, limit);
  }

  /** Takes a recipient that is due now. */
  enqueue(r: QueuedRecipient): void {
    if (this.stopping) return;
    const suppression = this.opts.suppressed?.(r);
    if (suppression) return this.opts.onSuppressed?.(r, suppression);
    const hit = this.sites.cached(r.domain);
    if (hit) return this.route(r, hit);
    this.resolving++;
    void this.sites.resolve(r.domain).then(
      (lookup) => {
        this.resolving--;
        this.route(r, lookup);
      },
      (err: unknown) => {
        this.resolving--;
        this.opts.log.error({ err, domain: r.domain }, 'site lookup failed');
        this.report(r, localReply(451, '4.4.3', 'site lookup failed'), { stage: 'dns' });
      },
    );
  }

  /**
   * Removes ready recipients (not those in a transaction now) that match, for an operator's
   * purge or move; the caller owns them afterwards.
   */
  extract(match: (r: QueuedRecipient, q: ReadyQueue) => boolean): QueuedRecipient[] {
    const out: QueuedRecipient[] = [];
    for (const q of this.queues.values()) out.push(...q.extract((r) => match(r, q)));
    return out;
  }

  /** Opens sessions wherever they may open now (an action was lifted, a pause ended). */
  kick(): void {
    for (const q of this.queues.values()) this.maybeOpen(q);
  }

  /** Closes every session and stops taking work. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.sweeper);
    for (const q of this.queues.values()) {
      q.releaseIdle();
      if (q.wakeTimer) clearTimeout(q.wakeTimer);
    }
    await Promise.all([...this.live].map((s) => s.close()));
  }

  /** Puts a recipient whose site is known into its ready queue, or says why it cannot go. */
  private route(r: QueuedRecipient, lookup: Awaited<ReturnType<SiteResolver['resolve']>>): void {
    if (this.stopping) return;
    if (lookup.kind === 'fail') {
      return this.report(r, lookup.reply, { stage: 'dns' });
    }
    const site = lookup.site;
    const choice = chooseSource(this.policy, r, (s) => this.sourceUsable(s, site));
    if (!choice.ok) return this.noSource(r, site, choice.reason);
    r.source = choice.source;
    r.site = site.name;
    const q = this.readyQueue(choice.source, site);
    if (this.opts.policy.isPaused('site', site.name)) {
      return this.opts.onRelease(r, this.now() + PAUSED_RECHECK_MS);
    }
    const suspension = this.opts.actions.active('suspend', q.source, site.name);
    if (suspension) return this.deferSuspended(r, q, suspension);
    if (q.heldUntil > this.now()) return this.deferHeld(q, r);
    const s = this.settingsOf(q);
    if (q.sizeOf(r.queue) >= s.maxReady) {
      q.noteHeldBack(r.queue, s.maxReady, this.now());
      return this.opts.onRelease(r, this.overflowUntil(q));
    }
    if (!q.push(r)) this.maybeOpen(q);
  }

  /** A source may take new mail for a site unless paused or disabled there by a rule. */
  private sourceUsable(source: string, site: Site): boolean {
    if (this.opts.policy.isPaused('source', source)) return false;
    return !this.opts.actions.active('disable-source', source, site.name);
  }

  /** No source of the pool may send to this site now: wait for the first one to come back. */
  private noSource(r: QueuedRecipient, site: Site, reason: 'unusable' | 'empty'): void {
    const now = this.now();
    const disabled = this.policy
      .sourceNames()
      .map((s) => this.opts.actions.active('disable-source', s, site.name))
      .filter((a): a is ActiveAction => !!a);
    if (reason === 'unusable' && disabled.length === 0) {
      // Every source of the pool is paused by an operator.
      return this.opts.onRelease(r, now + PAUSED_RECHECK_MS);
    }
    const until = disabled.length ? Math.min(...disabled.map((a) => a.until)) : now + 60_000;
    const text =
      reason === 'empty'
        ? `pool ${poolOf(this.policy, r)} has no usable source`
        : `every source of the pool is disabled for ${site.name} until ${iso(until)}`;
    const reply = localReply(451, '4.4.5', text);
    this.report(r, reply, { stage: 'egress', site: site.name }, until + this.spread());
  }

  private readyQueue(source: string, site: Site): ReadyQueue {
    const key = pathKey(source, site.name);
    let q = this.queues.get(key);
    if (!q) {
      q = new ReadyQueue(source, site);
      this.queues.set(key, q);
    }
    return q;
  }

  /** The settings of a ready queue, recomputed when the policy or the site's rules changed. */
  private settingsOf(q: ReadyQueue) {
    const key = `${this.policy.epoch}/${this.sites.version}`;
    if (q.settingsKey !== key) {
      const ruleDomains = this.sites.ruleDomains(q.site.name);
      q.settings = this.policy.settings(q.source, { ...q.site, ruleDomains });
      q.settingsKey = key;
    }
    return q.settings;
  }

  private stateInputs(q: ReadyQueue) {
    return {
      paused:
        this.opts.policy.isPaused('site', q.site.name) ||
        this.opts.policy.isPaused('source', q.source),
      backoff: this.opts.actions.active('backoff', q.source, q.site.name),
      suspend: this.opts.actions.active('suspend', q.source, q.site.name),
      disabled: this.opts.actions.active('disable-source', q.source, q.site.name),
    };
  }

  /** The limits in force: the settings, or their backoff values while backing off. */
  private limitsOf(q: ReadyQueue) {
    const s = this.settingsOf(q);
    const backoff = this.opts.actions.active('backoff', q.source, q.site.name);
    const limits = effectiveLimits(s, !!backoff);
    q.syncThrottles(limits, this.now);
    return limits;
  }

  /** When an overflowing recipient should come back: about the time to send what is ready. */
  private overflowUntil(q: ReadyQueue): number {
    const limits = this.limitsOf(q);
    const perMs = limits.messageRate ? limits.messageRate.count / limits.messageRate.perMs : 0;
    const drainMs = perMs > 0 ? q.size / perMs : OVERFLOW_MIN_MS;
    const ms = Math.min(OVERFLOW_MAX_MS, Math.max(OVERFLOW_MIN_MS, drainMs));
    return this.now() + ms * (0.5 + Math.random());
  }

  /** Opens sessions on `q` while it has more ready recipients than sessions, within limits. */
  private maybeOpen(q: ReadyQueue): void {
    if (this.stopping || !this.mayConnect(q)) return;
    const limits = this.limitsOf(q);
    const wait = q.messageThrottle?.waitMs() ?? 0;
    if (wait > limits.idleTimeout && q.size > 0) {
      // A session would only sit idle until the rate allows: open one then.
      q.waitReason = `message rate ${limits.messageRate!.text} reached`;
      return this.wakeLater(q, wait);
    }
    while (q.sessions < Math.min(limits.maxConnections, q.size)) {
      if (this.sessions >= this.opts.delivery.maxConnectionsTotal) {
        const total = this.opts.delivery.maxConnectionsTotal;
        q.waitReason = `engine total of ${total} connections reached`;
        this.starved.add(q);
        return;
      }
      const ct = q.connectionThrottle;
      if (ct && !ct.take()) {
        q.waitReason = `connection rate ${limits.connectionRate!.text} reached`;
        this.wakeLater(q, ct.waitMs());
        return;
      }
      q.waitReason = null;
      q.sessions++;
      this.sessions++;
      void this.runSession(q).finally(() => this.sessionEnded(q));
    }
  }

  /** Whether the path may have a new connection now (not paused, suspended or held). */
  private mayConnect(q: ReadyQueue): boolean {
    const st = this.stateInputs(q);
    if (st.paused || st.suspend || st.disabled) return false;
    return q.heldUntil <= this.now();
  }

  /** Calls maybeOpen on `q` after `ms` (a throttle will allow it then). */
  private wakeLater(q: ReadyQueue, ms: number): void {
    if (q.wakeTimer || this.stopping) return;
    q.wakeTimer = setTimeout(
      () => {
        q.wakeTimer = null;
        this.maybeOpen(q);
      },
      Math.max(1, ms),
    );
    q.wakeTimer.unref();
  }

  private sessionEnded(q: ReadyQueue): void {
    q.sessions--;
    this.sessions--;
    if (this.isIdle(q)) this.queues.delete(q.key);
    else this.maybeOpen(q);
    for (const s of this.starved) {
      if (this.sessions >= this.opts.delivery.maxConnectionsTotal) break;
      this.starved.delete(s);
      this.maybeOpen(s);
    }
  }

  /** One session's life: route, connect, send transactions while there is work, quit. */
  private async runSession(q: ReadyQueue): Promise<void> {
    const session = await this.connect(q);
    if (!session) return;
    this.live.add(session);
    try {
      await this.sendWhileWork(q, session);
    } finally {
      this.live.delete(session);
      await session.close();
    }
  }

  /** Finds a hop that accepts a session, or fails every ready recipient of `q`. */
  private async connect(q: ReadyQueue): Promise<SmtpSession | null> {
    const settings = this.settingsOf(q);
    const plan = await this.opts.router.plan(q.site.domain, settings.port);
    const where = { source: q.source, site: q.site.name };
    if (plan.kind === 'fail') {
      this.failAll(q, plan.reply, { ...where, stage: 'dns' });
      if (!plan.permanent) this.hold(q, plan.reply, { ...where, stage: 'dns' });
      return null;
    }
    let last: { reply: SmtpReply; stage: string; hop?: Hop } = {
      reply: localReply(451, '4.4.4', `no MX host of ${q.site.domain} has an address`),
      stage: 'connect',
    };
    for (const hop of plan.hops) {
      if (this.stopping) return null;
      const result = await this.open(this.sessionOptions(q, hop));
      if (result.ok) return result.session;
      last = { reply: result.reply, stage: result.stage, hop };
      this.opts.log.debug({ site: q.site.name, hop, reply: result.reply }, 'hop failed');
      const at = { ...where, stage: result.stage, mxHost: hop.name, mxIp: hop.ip };
      // A suspension or a disabled source has already moved what was ready: stop here.
      const rule = this.respond(q, result.reply, q.site.domain, at);
      if (rule?.action === 'suspend' || rule?.action === 'disable-source') return null;
    }
    const at = { ...where, stage: last.stage, mxHost: last.hop?.name, mxIp: last.hop?.ip };
    this.failAll(q, last.reply, at);
    this.hold(q, last.reply, at);
    return null;
  }

  private sessionOptions(q: ReadyQueue, hop: Hop): SessionOptions {
    const s = this.settingsOf(q);
    const source = this.policy.source(q.source);
    return {
      ip: hop.ip,
      port: hop.port,
      mxHost: hop.name,
      localAddress: source?.address,
      helo: source?.helo ?? this.policy.env.helo,
      tls: s.tls,
      timeouts: { ...this.opts.delivery.timeouts, connect: s.connectTimeout },
    };
  }

  /** Sends transactions on `session` until it is spent, broken, idle too long or throttled. */
  private async sendWhileWork(q: ReadyQueue, s: SmtpSession): Promise<void> {
    for (;;) {
      const limits = this.limitsOf(q);
      if (this.stopping || !s.usable || !this.mayConnect(q)) return;
      if (s.transactions >= limits.maxMessagesPerConnection) return;
      // A lowered connection limit (a live change, a back-off) closes the extra sessions.
      if (q.sessions > limits.maxConnections) return;
      const wait = q.messageThrottle?.waitMs() ?? 0;
      if (wait > 0) {
        q.waitReason = `message rate ${limits.messageRate!.text} reached`;
        if (wait > limits.idleTimeout) return this.wakeLater(q, wait);
        await sleep(wait);
        continue;
      }
      const max = this.opts.returnPath ? 1 : transactionLimit(limits);
      const batch = q.take(max, this.now(), this.weight, this.opts.onExpired);
      if (batch.length === 0) {
        if (!(await q.waitForWork(limits.idleTimeout))) return;
        continue;
      }
      q.messageThrottle?.take(batch.length);
      q.waitReason = null;
      const siteReply = await this.sendBatch(q, s, batch);
      if (siteReply) {
        this.hold(q, siteReply, {
          source: q.source,
          site: q.site.name,
          stage: 'mail',
          mxHost: s.mxHost,
          mxIp: s.remoteIp,
        });
      }
    }
  }

  private readonly weight = (queue: string): number => this.policy.queue(queue).weight;

  /**
   * One transaction: the recipients of one message on an open session. Returns the server's
   * 421 when it closed the session (a refusal of the whole site for now) and no response rule
   * took it.
   */
  private async sendBatch(
    q: ReadyQueue,
    s: SmtpSession,
    batch: QueuedRecipient[],
  ): Promise<SmtpReply | null> {
    const first = batch[0]!;
    const body = this.opts.body(first.messageId);
    if (!body) {
      // The message left the store while its recipients were ready (it was purged).
      this.opts.log.warn({ messageId: first.messageId }, 'message body missing; skipped');
      return null;
    }
    // The null sender <> (a DSN we relay) stays null: nothing may bounce back to a bounce.
    const returnPath = this.opts.returnPath;
    const from = returnPath && first.sender !== '' ? returnPath(first) : first.sender;
    const envelope = {
      from,
      recipients: batch.map((r) => r.address),
      smtputf8: batch.some((r) => !isAscii(r.address)) || !isAscii(from),
    };
    const startedAt = this.now();
    const result = await s.send(envelope, body);
    const ruled = new Set<SmtpReply>();
    const hop = { mxHost: s.mxHost, mxIp: s.remoteIp, localIp: s.localAddress, tls: s.tls };
    result.recipients.forEach((res, i) => {
      const r = batch[i]!;
      const details: AttemptDetails = {
        attempt: r.attempts + 1,
        source: q.source,
        site: q.site.name,
        ...hop,
        stage: result.failure?.stage ?? stageOf(res.reply, result),
        reply: res.reply,
        timings: {
          sinceReceptionMs: this.now() - r.receivedAt,
          queuedMs: startedAt - r.readyAt,
          transactionMs: this.now() - startedAt,
        },
      };
      const rule = this.respond(q, res.reply, r.domain, details);
      if (rule) ruled.add(res.reply);
      this.report(r, res.reply, details, undefined, rule);
    });
    // A 421 that a response rule matched is the rule's to handle (as PowerMTA's default
    // smtp-421-means-mx-unavailable=no); only an unmatched one holds the ready queue.
    const closed = result.recipients.find((res) => res.reply.code === 421)?.reply;
    return closed && !ruled.has(closed) ? closed : null;
  }

  /**
   * Runs a remote reply through the response rules and starts the action of the rule that
   * matches. Returns the rule, or null. Local replies never match.
   */
  private respond(
    q: ReadyQueue,
    reply: SmtpReply,
    domain: string,
    where: Partial<AttemptDetails>,
  ): CompiledResponseRule | null {
    if (!isRemote(reply) || replyClass(reply) === 'success') return null;
    const site = q.site;
    const rule = this.policy.matchResponse(reply, {
      provider: site.provider,
      site: site.name,
      domain,
    });
    if (!rule) return null;
    // A threshold rule acts once enough matching replies came on this ready queue; until then
    // the reply is an ordinary one.
    if (rule.trigger && !this.triggers.hit(rule.name, q.source, site.name, rule.trigger)) {
      return null;
    }
    where.rule = { name: rule.name, action: rule.action };
    if (rule.action === 'bounce') return rule;
    const action = this.opts.actions.start({
      kind: rule.action,
      source: q.source,
      site: site.name,
      rule: rule.name,
      cause: { reply, domain, mxHost: where.mxHost },
      until: this.now() + rule.duration,
    });
    if (action.hits === 1) {
      this.opts.log.warn(
        { source: q.source, site: site.name, rule: rule.name, until: iso(action.until) },
        `ready queue ${rule.action}: ${formatReply(reply)}`,
      );
    }
    this.applyAction(q, action);
    return rule;
  }

  /** What an action does at once to what is ready on its path. */
  private applyAction(q: ReadyQueue, a: ActiveAction): void {
    if (a.kind === 'backoff') return;
    q.releaseIdle();
    const ready = q.drain();
    // Deferred after this turn: the recipients of the transaction that triggered the action
    // are reported first, and re-routing must not run inside the session loop.
    setImmediate(() => {
      for (const r of ready) {
        if (a.kind === 'suspend') this.deferSuspended(r, q, a);
        else this.enqueue(r); // disable-source: the pool's other sources take it
      }
    });
    this.wakeLater(q, a.until - this.now());
  }

  /** Defers a recipient whose path is suspended, until the suspension ends. */
  private deferSuspended(r: QueuedRecipient, q: ReadyQueue, a: ActiveAction): void {
    const path = `${q.source} -> ${q.site.name}`;
    const text = `ready queue ${path} suspended until ${iso(a.until)} by rule ${
      a.rule
    } after: ${formatReply(a.cause.reply)}`;
    const reply = localReply(451, '4.4.5', text);
    this.report(
      r,
      reply,
      { stage: 'suspended', source: q.source, site: q.site.name },
      a.until + this.spread(),
    );
  }

  /** Holds `q` (see the file comment): defers what is ready and opens nothing until it ends. */
  private hold(q: ReadyQueue, reply: SmtpReply, where: Partial<AttemptDetails>): void {
    const ms = this.opts.delivery.holdAfterFailure;
    if (ms <= 0) return;
    q.heldUntil = this.now() + ms;
    const text = `delivery to ${q.site.name} from ${q.source} held for ${Math.round(
      ms / 1000,
    )}s after: ${reply.text}`;
    q.heldReply = localReply(reply.code, reply.enhanced ?? '4.4.1', text);
    q.heldWhere = where;
    this.failAll(q, q.heldReply, { ...where, stage: 'held' });
    this.wakeLater(q, ms);
    this.opts.log.info(
      { site: q.site.name, source: q.source, reply, heldMs: ms },
      'ready queue held',
    );
  }

  /** Defers a recipient that arrived while its path is held. */
  private deferHeld(q: ReadyQueue, r: QueuedRecipient): void {
    const reply = q.heldReply ?? localReply(451, '4.4.1', `delivery to ${q.site.name} held`);
    this.report(r, reply, { ...q.heldWhere, stage: 'held' });
  }

  /**
   * Reports an outcome. `delayUntil` makes it a delayed one (no attempt counted); a matched
   * bounce rule makes a temporary reply final.
   */
  private report(
    r: QueuedRecipient,
    reply: SmtpReply,
    where: Partial<AttemptDetails>,
    delayUntil?: number,
    rule?: CompiledResponseRule | null,
  ): void {
    const now = this.now();
    const details: AttemptDetails = {
      attempt: r.attempts + 1,
      timings: { sinceReceptionMs: now - r.receivedAt, queuedMs: now - r.readyAt },
      ...where,
      reply,
    };
    const cls = replyClass(reply);
    if (cls !== 'success') details.bounce = this.policy.classifier.classify(reply);
    const retry = this.retryOf(r);
    if (delayUntil !== undefined) {
      return this.opts.onOutcome(r, { kind: 'delayed', details, retryAt: delayUntil, retry });
    }
    let kind: Outcome['kind'] =
      cls === 'success' ? 'delivered' : cls === 'transient' ? 'transient' : 'permanent';
    if (rule?.action === 'bounce' && kind === 'transient') kind = 'permanent';
    // A rule that backs off, suspends or disables a source says the reply is about our source
    // or our rate, not the mailbox: a 5xx block of an IP is retried (from another source when
    // the pool has one) instead of bounced.
    else if (rule && rule.action !== 'bounce' && kind === 'permanent') kind = 'transient';
    this.opts.onOutcome(r, { kind, details, retry });
  }

  /** The retry delays a shaping rule sets for the recipient's destination, if any. */
  private retryOf(r: QueuedRecipient): number[] | null {
    const lookup = this.sites.cached(r.domain);
    if (!lookup || lookup.kind !== 'site' || !r.source) return null;
    const q = this.queues.get(pathKey(r.source, lookup.site.name));
    return q ? this.settingsOf(q).retry : null;
  }

  /** Fails every ready recipient of `q` with one reply (DNS failure, no host reachable). */
  private failAll(q: ReadyQueue, reply: SmtpReply, where: Partial<AttemptDetails>): void {
    for (const r of q.drain()) this.report(r, reply, where);
  }

  /** A ready queue with nothing ready, no session, no hold and no timer can be forgotten. */
  private isIdle(q: ReadyQueue): boolean {
    return q.size === 0 && q.sessions === 0 && q.heldUntil <= this.now() && !q.wakeTimer;
  }

  /** A new policy or pause: sessions may open (higher limits) or must stop (paused path). */
  private policyChanged(): void {
    this.sites.learnRuleDomains();
    for (const q of [...this.queues.values()]) {
      if (!this.policy.source(q.source) || this.opts.policy.isPaused('source', q.source)) {
        // A source paused or taken out of the policy: the pool's other sources take its mail
        // (after this turn, so that re-routing never runs inside this loop).
        q.releaseIdle();
        const ready = q.drain();
        if (ready.length) setImmediate(() => ready.forEach((r) => this.enqueue(r)));
        continue;
      }
      if (this.opts.policy.isPaused('site', q.site.name)) {
        q.releaseIdle();
        for (const r of q.drain()) this.opts.onRelease(r, this.now() + PAUSED_RECHECK_MS);
        continue;
      }
      this.maybeOpen(q);
    }
  }

  /** Expires ready recipients past their age, and forgets idle ready queues. */
  private sweep(): void {
    const now = this.now();
    for (const q of this.queues.values()) {
      q.sweepExpired(now, this.opts.onExpired);
      if (this.isIdle(q)) this.queues.delete(q.key);
    }
  }

  private spread(): number {
    return Math.floor(Math.random() * RESUME_SPREAD_MS);
  }
}

/** Which step a per-recipient reply came from: MAIL, RCPT or the final dot. */
function stageOf(reply: SmtpReply, r: { mail: SmtpReply; data?: SmtpReply }): string {
  if (reply === r.data) return 'data';
  return reply === r.mail ? 'mail' : 'rcpt';
}

function isAscii(s: string): boolean {
  return !/[^\x00-\x7f]/.test(s);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
