/**
 * The engine in its direct role: the composition root that opens the store and wires intake,
 * scheduler, dispatcher, records, metrics and the API together, and stops them in order.
 */
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../api/server.js';
import type { Config } from '../config/schema.js';
import { createDnsLookup, type DnsLookup } from '../delivery/dns.js';
import { Dispatcher } from '../delivery/dispatcher.js';
import { MxResolver } from '../delivery/mx.js';
import { Router } from '../delivery/route.js';
import { openSession } from '../delivery/smtp-client.js';
import { Intake } from '../intake/intake.js';
import { createSmtpIntake } from '../intake/smtp-intake.js';
import type { IntakeServer } from '../intake/smtp-server.js';
import { loadTls } from '../intake/tls.js';
import { Metrics } from '../metrics/metrics.js';
import { Journal } from '../records/journal.js';
import { Recorder } from '../records/recorder.js';
import { isUserComplaint, type StoredRecord } from '../records/types.js';
import { Scheduler } from '../scheduler/scheduler.js';
import { Committer } from '../spool/committer.js';
import { Spool, type QueuedRecipient } from '../spool/spool.js';
import { openStore, storeFile, type Db } from '../spool/store.js';
import { WalSync } from '../spool/wal-sync.js';
import { GridpostError } from '../errors/catalogue.js';
import { SuppressionList } from '../feedback/suppression.js';
import { UnsubscribeLinks } from '../feedback/unsubscribe.js';
import { Webhooks } from '../feedback/webhooks.js';
import { FeedbackRules } from '../feedback/rules.js';
import { createReportListener } from '../feedback/report-listener.js';
import { Reports, type ReportOutcome } from '../feedback/reports.js';
import { ReturnPaths } from '../bounces/return-path.js';
import { suppressedRecord } from '../records/build.js';
import { ActionBoard } from '../shaping/actions.js';
import { PolicyService } from '../shaping/policy-service.js';
import { Maildomains } from '../maildomains/maildomains.js';
import { MaildomainWatch, type DnsContext } from '../maildomains/watch.js';
import type { ComplianceFacts } from '../maildomains/compliance.js';
import { maildomainUsage } from '../maildomains/usage.js';
import { loadApiKeys } from './api-keys.js';
import { Controls } from './controls.js';
import { StatusCount } from './status.js';

export interface EngineOptions {
  log?: Logger;
  /** DNS to use instead of config.dns (tests inject the test world's server this way). */
  dns?: DnsLookup;
  /** Replaces the SMTP client's session opener (for tests that observe the socket layer). */
  open?: typeof openSession;
}

/** Where a running engine listens. */
export interface Listening {
  smtp: { host: string; port: number };
  http: { host: string; port: number };
  /** The bounce listener, when bounces.listen is set. */
  bounces?: { host: string; port: number };
}

/** The store and what writes to it. */
interface Storage {
  db: Db;
  walSync: WalSync | null;
  committer: Committer;
  journal: Journal;
  recorder: Recorder;
  spool: Spool;
  policy: PolicyService;
  actions: ActionBoard;
  suppressions: SuppressionList;
  webhooks: Webhooks;
  feedbackRules: FeedbackRules;
  returnPaths: ReturnPaths;
  maildomains: Maildomains;
  /** closing is set when shutdown begins: publish listeners then write nothing more. */
  life: { closing: boolean };
}

/** Everything a running engine is made of. */
interface Parts extends Storage {
  config: Config;
  log: Logger;
  scheduler: Scheduler;
  dispatcher: Dispatcher;
  controls: Controls;
  status: StatusCount;
  metrics: Metrics;
  smtp: IntakeServer;
  reportListener: IntakeServer | null;
  api: FastifyInstance;
  maildomainWatch: MaildomainWatch;
  listening: Listening;
  apiKeyFile?: string;
}

/** A running engine. */
export class Engine {
  readonly config: Config;
  readonly log: Logger;
  readonly spool: Spool;
  readonly recorder: Recorder;
  readonly scheduler: Scheduler;
  readonly dispatcher: Dispatcher;
  readonly policy: PolicyService;
  readonly controls: Controls;
  readonly status: StatusCount;
  readonly metrics: Metrics;
  /** Maildomains with their keys, accounts and DNS status. */
  readonly maildomains: MaildomainWatch;
  readonly listening: Listening;
  /** The generated API key's file, when no key is configured. */
  readonly apiKeyFile: string | undefined;
  private stopping: Promise<void> | null = null;
  private readonly pruneTimer: NodeJS.Timeout;

  private constructor(private readonly parts: Parts) {
    this.config = parts.config;
    this.log = parts.log;
    this.spool = parts.spool;
    this.recorder = parts.recorder;
    this.scheduler = parts.scheduler;
    this.dispatcher = parts.dispatcher;
    this.policy = parts.policy;
    this.controls = parts.controls;
    this.status = parts.status;
    this.metrics = parts.metrics;
    this.maildomains = parts.maildomainWatch;
    this.listening = parts.listening;
    this.apiKeyFile = parts.apiKeyFile;
    // Records past their retention leave the store in small batches, hourly.
    this.pruneTimer = setInterval(() => this.prune(), 3_600_000);
    this.pruneTimer.unref();
  }

  /** Starts an engine from a validated configuration. */
  static async start(config: Config, opts: EngineOptions = {}): Promise<Engine> {
    const log = opts.log ?? pino({ level: config.log.level, name: 'gridpost' });
    const storage = openStorage(config, log);
    try {
      return await Engine.assemble(config, opts, log, storage);
    } catch (err) {
      storage.walSync?.close();
      storage.db.close();
      throw err;
    }
  }

  /** Wires delivery, intake and the API onto an open store, then starts listening. */
  private static async assemble(
    config: Config,
    opts: EngineOptions,
    log: Logger,
    storage: Storage,
  ): Promise<Engine> {
    const { spool, recorder, policy, actions, maildomains } = storage;
    const dns = opts.dns ?? engineDns(config);
    const scheduler = new Scheduler({
      spool,
      policy: () => policy.current,
      paused: (q) => policy.isPaused('queue', q),
      window: config.spool.window,
    });
    const dispatcher = buildDispatcher(config, opts, dns, storage, scheduler, log);
    const controls = new Controls(policy, actions, scheduler, dispatcher, spool);
    const status = new StatusCount();
    const intakeLog = log.child({ role: 'intake' });
    const links = new UnsubscribeLinks(config.dataDir, config.feedback.unsubscribeUrl);
    const lists = { suppressions: storage.suppressions, unsubscribe: links };
    const intake = new Intake(
      config,
      scheduler,
      spool,
      intakeLog,
      policy,
      storage.suppressions,
      links,
      maildomains,
    );
    const tls = await loadTls(config.smtp.tls, config.dataDir, config.hostname);
    const smtp = createSmtpIntake(config, intake, tls, log.child({ role: 'smtp-intake' }), (s) =>
      metrics.injectionLatency.observe({ via: 'smtp' }, s),
    );
    const reports = new Reports(
      recorder,
      storage.committer,
      storage.returnPaths,
      () => policy.current.classifier,
    );
    const reportListener = config.bounces.listen
      ? createReportListener(
          config,
          storage.returnPaths,
          reports,
          tls,
          log.child({ role: 'bounce-listener' }),
          (o: ReportOutcome) => metrics.observeReport(o),
        )
      : null;
    const metrics = new Metrics({
      queueSizes: () => spool.queueSizes(),
      outboundConnections: () => dispatcher.openSessions,
      inboundConnections: () => smtp.connections,
      readyInMemory: () => dispatcher.readyCount,
      readyQueueStates: () => countBy(controls.readyQueues(100_000), (q) => q.state),
      actions: () => countBy(controls.actions(), (a) => a.kind),
      maildomainDns: () =>
        countBy(
          maildomains.list(),
          (m) => maildomainWatch.lastStatus(m.domain)?.status ?? 'unchecked',
        ),
    });
    recorder.onPublish((records) => {
      status.observe(records);
      metrics.observe(records);
      // Once shutdown has flushed the committer, new writes would find the store closed.
      if (storage.life.closing) return;
      storage.feedbackRules.observe(records);
      storage.webhooks.poke();
    });
    const maildomainWatch = new MaildomainWatch(
      maildomains,
      dns,
      () => dnsContext(config, policy),
      config.maildomains.dnsCheckInterval,
      log.child({ role: 'maildomains' }),
      (domain) => complianceFacts(config, policy, storage.db, domain),
    );
    const keys = loadApiKeys(config);
    const ctx = { config, intake, recorder, spool, status, metrics, keys: keys.keys, log };
    const { webhooks, feedbackRules } = storage;
    const api = await buildApi({
      ...ctx,
      policy,
      controls,
      ...lists,
      webhooks,
      feedbackRules,
      maildomains: maildomainWatch,
    });
    const listening = await listenAll(config, smtp, reportListener, api).catch(
      async (err: unknown) => {
        await Promise.all([
          smtp.close(0),
          reportListener?.close(0),
          api.close(),
          dispatcher.stop(),
        ]);
        throw err;
      },
    );
    scheduler.start((r) => dispatcher.enqueue(r));
    storage.webhooks.start();
    maildomainWatch.start();
    log.info({ ...listening, dataDir: config.dataDir }, 'engine started');
    const apiKeyFile = keys.generatedFile;
    return new Engine({
      ...storage,
      config,
      log,
      scheduler,
      dispatcher,
      controls,
      status,
      metrics,
      smtp,
      reportListener,
      api,
      maildomainWatch,
      listening,
      apiKeyFile,
    });
  }

  /** Stops intake first, then delivery, then commits what is pending and closes the store. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    const p = this.parts;
    clearInterval(this.pruneTimer);
    await Promise.all([p.smtp.close(2000), p.reportListener?.close(2000)]);
    await p.api.close();
    p.scheduler.stop();
    await p.maildomainWatch.stop();
    p.life.closing = true;
    p.webhooks.stop();
    await p.dispatcher.stop();
    p.committer.flush();
    await p.journal.close();
    await p.walSync?.sync().catch(() => undefined); // the last groups, committed by flush()
    p.walSync?.close();
    p.db.close();
    this.log.info({ commits: p.committer.stats }, 'engine stopped');
  }

  /** Deletes records past retention, one batch per event-loop turn so delivery never waits. */
  private prune(): void {
    if (this.stopping) return;
    const before = Date.now() - this.config.records.retention;
    const keepAfter = this.parts.webhooks.lowestCursor() ?? undefined;
    if (this.recorder.prune(before, undefined, keepAfter) > 0) setImmediate(() => this.prune());
  }
}

/** Opens the store, the accounting files and the spool on them. */
function openStorage(config: Config, log: Logger): Storage {
  const db = openStore(config.dataDir);
  const walSync =
    config.spool.sync === 'full'
      ? new WalSync(`${storeFile(config.dataDir)}-wal`, config.dataDir)
      : null;
  const committer = new Committer(db, config.spool.commitWindow, walSync);
  const journal = new Journal(
    join(config.dataDir, 'records'),
    config.records.rotateBytes,
    Date.now,
    (err) => log.error({ err }, 'accounting file write failed; the store keeps the records'),
  );
  const recorder = new Recorder(db, journal);
  const spool = new Spool(db, committer, recorder);
  spool.onWriteError = (err) =>
    log.fatal({ err }, 'spool write kept failing for 10 minutes; restart to recover state');
  const policy = new PolicyService(db, policyEnvironment(config), config.policy);
  const actions = new ActionBoard(db);
  const suppressions = new SuppressionList(db, committer);
  recorder.onInsert((r) => {
    const s = suppressionFrom(r);
    if (s) suppressions.addInWrite(s.address, s.reason, s.source);
  });
  const webhooks = new Webhooks(db, recorder, log.child({ role: 'webhooks' }));
  const feedbackRules = new FeedbackRules(
    db,
    committer,
    recorder,
    suppressions,
    () => policy.current.doc.feedbackRules,
    log.child({ role: 'feedback-rules' }),
  );
  const maildomains = new Maildomains(
    db,
    committer,
    config.dataDir,
    {
      keyGraceMs: config.maildomains.keyGrace,
      certificateWarningMs: config.maildomains.certificateWarning,
      hasQueue: (q) => policy.current.hasQueue(q),
    },
    log.child({ role: 'maildomains' }),
  );
  return {
    db,
    walSync,
    committer,
    journal,
    recorder,
    spool,
    policy,
    actions,
    suppressions,
    webhooks,
    feedbackRules,
    returnPaths: new ReturnPaths(
      config.dataDir,
      config.bounces.domain,
      config.bounces.alsoAccept,
      (domain) => maildomains.find(domain)?.returnPathDomain ?? undefined,
      () => maildomains.returnPathDomains(),
    ),
    maildomains,
    life: { closing: false },
  };
}

/** What the start-up configuration gives the traffic policy. */
function policyEnvironment(config: Config) {
  const helo = config.delivery.helo ?? config.hostname;
  return {
    port: config.delivery.port,
    helo,
    connectTimeout: config.delivery.timeouts.connect,
    defaultSource: { address: config.delivery.localAddress, helo },
  };
}

/** The dispatcher with its DNS, MX resolution and routes. */
function buildDispatcher(
  config: Config,
  opts: EngineOptions,
  dns: DnsLookup,
  storage: Storage,
  scheduler: Scheduler,
  log: Logger,
): Dispatcher {
  const { spool, policy, actions } = storage;
  const mx = new MxResolver(dns, { cacheMs: config.dns.cache, ipv6: config.dns.ipv6 });
  return new Dispatcher({
    delivery: config.delivery,
    router: new Router(config.delivery, mx, dns),
    policy,
    actions,
    siteCacheMs: config.dns.cache,
    body: (id) => spool.body(id),
    onOutcome: (r, o) => scheduler.outcome(r, o),
    onExpired: (r) => scheduler.expire(r),
    onRelease: (r, at) => scheduler.release(r, at),
    suppressed: (r) => checkSuppressed(storage.suppressions, r),
    onSuppressed: (r, s) => scheduler.finish(r, [suppressedRecord(r, s, Date.now())]),
    ...(storage.returnPaths.enabled
      ? { returnPath: (r: QueuedRecipient) => storage.returnPaths.forRecipient(r.id, r.sender) }
      : {}),
    log: log.child({ role: 'dispatcher' }),
    open: opts.open,
  });
}

// The window of the bulk-sender report's figures: Gmail and Yahoo judge the recent weeks.
const COMPLIANCE_WINDOW_MS = 30 * 86_400_000;

/** What the bulk-sender report needs to know of the engine's settings and records. */
function complianceFacts(
  config: Config,
  policy: PolicyService,
  db: Db,
  domain: string,
): ComplianceFacts {
  const p = policy.current;
  const source = p.sourceNames()[0] ?? 'default';
  const tlsDisabledFor = ['google', 'yahoo', 'microsoft'].filter(
    (provider) =>
      p.settings(source, { name: provider, provider, ruleDomains: [] }).tls === 'disabled',
  );
  const bulk = p.queueNames().filter((q) => p.queue(q).bulk);
  const https = config.feedback.unsubscribeUrl?.startsWith('https:') ?? false;
  const added = https && bulk.length > 0 && bulk.every((q) => p.queue(q).listUnsubscribe);
  const enforced = config.checks.listUnsubscribe === 'refuse';
  const usage = maildomainUsage(db, domain, Date.now() - COMPLIANCE_WINDOW_MS);
  return { tlsDisabledFor, unsubscribe: { enforced, added }, usage };
}

/** The engine's DNS: the configured servers (GRIDPOST_DNS) or the system's. */
function engineDns(config: Config): DnsLookup {
  return createDnsLookup({
    servers: config.dns.servers,
    timeoutMs: config.dns.timeout,
    tries: config.dns.tries,
  });
}

/** What the maildomains' DNS status is checked against: our egress sources and bounce host. */
function dnsContext(config: Config, policy: PolicyService): DnsContext {
  const sources = Object.entries(policy.current.doc.sources).flatMap(([name, s]) =>
    s.address
      ? [{ name, address: s.address, helo: s.helo ?? config.delivery.helo ?? config.hostname }]
      : [],
  );
  if (sources.length === 0 && config.delivery.localAddress) {
    const helo = config.delivery.helo ?? config.hostname;
    sources.push({ name: 'default', address: config.delivery.localAddress, helo });
  }
  return { sources, bounceHost: config.maildomains.bounceHost ?? config.hostname };
}

async function listenAll(
  config: Config,
  smtp: IntakeServer,
  reportListener: IntakeServer | null,
  api: FastifyInstance,
): Promise<Listening> {
  const [smtpHost, smtpPort] = splitHostPort(config.smtp.listen);
  const [httpHost, httpPort] = splitHostPort(config.http.listen);
  const smtpAddr = await smtp
    .listen(smtpHost, smtpPort)
    .catch((err: unknown) => Promise.reject(listenError('smtp.listen', config.smtp.listen, err)));
  await api
    .listen({ host: httpHost, port: httpPort })
    .catch((err: unknown) => Promise.reject(listenError('http.listen', config.http.listen, err)));
  const addr = api.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : httpPort;
  const listening: Listening = { smtp: smtpAddr, http: { host: httpHost, port } };
  if (reportListener && config.bounces.listen) {
    const [host, bport] = splitHostPort(config.bounces.listen);
    listening.bounces = await reportListener
      .listen(host, bport)
      .catch((err: unknown) =>
        Promise.reject(listenError('bounces.listen', config.bounces.listen!, err)),
      );
  }
  return listening;
}

function listenError(key: string, address: string, err: unknown): GridpostError {
  const why = (err as NodeJS.ErrnoException).code ?? String(err);
  return new GridpostError('E_LISTEN', `cannot listen on ${address} (${key}): ${why}`, {
    path: key,
    cause: err,
  });
}

/**
 * The suppression of a recipient about to be tried, if any. A recipient that intake (or an
 * earlier attempt) found clear needs no second look unless the list grew since.
 */
function checkSuppressed(list: SuppressionList, r: QueuedRecipient) {
  if (r.suppressionChecked === list.version) return undefined;
  const s = list.get(r.address);
  if (!s) r.suppressionChecked = list.version;
  return s;
}

/**
 * The suppression an outcome causes, if any: a hard bounce (at once or reported later) and a
 * recipient's complaint suppress their address.
 */
function suppressionFrom(r: StoredRecord) {
  let reason: 'complaint' | 'hard-bounce';
  if (r.type === 'Complaint' && isUserComplaint(r)) reason = 'complaint';
  else if (r.type === 'Bounce' && r.bounce?.class === 'hard') reason = 'hard-bounce';
  else if (r.type === 'AsyncBounce' && r.action === 'failed' && r.bounce.class === 'hard')
    reason = 'hard-bounce';
  else return undefined;
  return { address: r.recipient, reason, source: r.recipientId };
}

/** How many items fall under each key. */
function countBy<T>(items: T[], key: (t: T) => string): Map<string, number> {
  const out = new Map<string, number>();
  for (const i of items) out.set(key(i), (out.get(key(i)) ?? 0) + 1);
  return out;
}

/** "127.0.0.1:2525" -> ["127.0.0.1", 2525]; "[::1]:25" -> ["::1", 25]. */
export function splitHostPort(value: string): [string, number] {
  const cut = value.lastIndexOf(':');
  return [value.slice(0, cut).replace(/^\[|\]$/g, ''), Number(value.slice(cut + 1))];
}
