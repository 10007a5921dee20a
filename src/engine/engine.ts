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
import { Scheduler } from '../scheduler/scheduler.js';
import { Committer } from '../spool/committer.js';
import { Spool } from '../spool/spool.js';
import { openStore, type Db } from '../spool/store.js';
import { GridpostError } from '../errors/catalogue.js';
import { loadApiKeys } from './api-keys.js';
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
}

/** A running engine. */
export class Engine {
  private stopping: Promise<void> | null = null;
  private readonly pruneTimer: NodeJS.Timeout;

  private constructor(
    readonly config: Config,
    readonly log: Logger,
    readonly db: Db,
    readonly committer: Committer,
    readonly spool: Spool,
    readonly recorder: Recorder,
    readonly scheduler: Scheduler,
    readonly dispatcher: Dispatcher,
    readonly status: StatusCount,
    readonly metrics: Metrics,
    private readonly journal: Journal,
    private readonly smtp: IntakeServer,
    private readonly api: FastifyInstance,
    readonly listening: Listening,
    readonly apiKeyFile: string | undefined,
  ) {
    // Records past their retention leave the store in small batches, hourly.
    this.pruneTimer = setInterval(() => this.prune(), 3_600_000);
    this.pruneTimer.unref();
  }

  /** Starts an engine from a validated configuration. */
  static async start(config: Config, opts: EngineOptions = {}): Promise<Engine> {
    const log = opts.log ?? pino({ level: config.log.level, name: 'gridpost' });
    const db = openStore(config.dataDir, config.spool.sync);
    const committer = new Committer(db, config.spool.commitWindow);
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
    const scheduler = new Scheduler({ spool, queues: config.queues, window: config.spool.window });
    const dns =
      opts.dns ??
      createDnsLookup({
        servers: config.dns.servers,
        timeoutMs: config.dns.timeout,
        tries: config.dns.tries,
      });
    const mx = new MxResolver(dns, { cacheMs: config.dns.cache, ipv6: config.dns.ipv6 });
    const dispatcher = new Dispatcher({
      delivery: config.delivery,
      helo: config.delivery.helo ?? config.hostname,
      router: new Router(config.delivery, mx, dns),
      body: (id) => spool.body(id),
      onOutcome: (r, o) => scheduler.outcome(r, o),
      onExpired: (r) => scheduler.expire(r),
      log: log.child({ role: 'dispatcher' }),
      open: opts.open,
    });
    const status = new StatusCount();
    const intake = new Intake(config, scheduler, spool, log.child({ role: 'intake' }));
    const tls = await loadTls(config.smtp.tls, config.dataDir, config.hostname);
    const smtp = createSmtpIntake(config, intake, tls, log.child({ role: 'smtp-intake' }), (s) =>
      metrics.injectionLatency.observe({ via: 'smtp' }, s),
    );
    const metrics = new Metrics({
      queueSizes: () => spool.queueSizes(),
      outboundConnections: () => dispatcher.openSessions,
      inboundConnections: () => smtp.connections,
      readyInMemory: () => dispatcher.readyCount,
    });
    recorder.onPublish((records) => {
      status.observe(records);
      metrics.observe(records);
    });
    const keys = loadApiKeys(config);
    const api = await buildApi({
      config,
      intake,
      recorder,
      spool,
      status,
      metrics,
      keys: keys.keys,
      log,
      destinations: () => dispatcher.destinationStates(),
    });
    const listening = await listenAll(config, smtp, api);
    scheduler.start((r) => dispatcher.enqueue(r));
    log.info(
      { smtp: listening.smtp, http: listening.http, dataDir: config.dataDir },
      'engine started',
    );
    return new Engine(
      config,
      log,
      db,
      committer,
      spool,
      recorder,
      scheduler,
      dispatcher,
      status,
      metrics,
      journal,
      smtp,
      api,
      listening,
      keys.generatedFile,
    );
  }

  /** Stops intake first, then delivery, then commits what is pending and closes the store. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    clearInterval(this.pruneTimer);
    await this.smtp.close(2000);
    await this.api.close();
    this.scheduler.stop();
    await this.dispatcher.stop();
    this.committer.flush();
    await this.journal.close();
    this.db.close();
    this.log.info({ commits: this.committer.stats }, 'engine stopped');
  }

  /** Deletes records past retention, one batch per event-loop turn so delivery never waits. */
  private prune(): void {
    if (this.stopping) return;
    const before = Date.now() - this.config.records.retention;
    if (this.recorder.prune(before) > 0) setImmediate(() => this.prune());
  }
}

async function listenAll(
  config: Config,
  smtp: IntakeServer,
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
  return { smtp: smtpAddr, http: { host: httpHost, port } };
}

function listenError(key: string, address: string, err: unknown): GridpostError {
  const why = (err as NodeJS.ErrnoException).code ?? String(err);
  return new GridpostError('E_LISTEN', `cannot listen on ${address} (${key}): ${why}`, {
    path: key,
    cause: err,
  });
}

/** "127.0.0.1:2525" -> ["127.0.0.1", 2525]; "[::1]:25" -> ["::1", 25]. */
export function splitHostPort(value: string): [string, number] {
  const cut = value.lastIndexOf(':');
  return [value.slice(0, cut).replace(/^\[|\]$/g, ''), Number(value.slice(cut + 1))];
}
