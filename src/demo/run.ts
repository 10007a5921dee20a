/**
 * The demo run: starts the demo world and an engine in this process, injects messages spread
 * over the simulated providers, shows progress once a second until nothing waits, and ends
 * with a report per provider built from the run's records. Nothing leaves 127.0.0.0/8.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino, type Logger } from 'pino';
import { apiGet } from '../cli/client.js';
import { formatTrace } from '../cli/format.js';
import { validateConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { Engine } from '../engine/engine.js';
import { emptyCounts, injectAll, SMTP_SESSIONS, type InjectCounts } from './inject.js';
import type { InjectPlan, InjectTarget } from './inject.js';
import { formatReport, type ProviderSummary, type TraceExample } from './report.js';
import { formatProgress, streamOutput, type DemoOutput, type Progress } from './screen.js';
import { RunTally } from './tally.js';
import {
  DEFAULT_BUSY_PER_SECOND,
  startDemoWorld,
  type DemoProvider,
  type DemoWorldOptions,
} from './world.js';

/** What to run; every field has a default that suits `npm run demo`. */
export interface DemoOptions extends DemoWorldOptions {
  /** Messages to inject, one recipient each, spread evenly over the providers; default 3000. */
  messages?: number;
  /** Keep the data directory (store, spool, accounting files) after the run. */
  keep?: boolean;
  /** Stop waiting after this many milliseconds even if recipients are still queued. */
  timeLimitMs?: number;
  output?: DemoOutput;
  /** Diagnostics; default pino at 'warn' on stderr, so the progress line stays readable. */
  log?: Logger;
}

/** How the run ended. */
export interface DemoResult {
  providers: ProviderSummary[];
  injected: InjectCounts;
  /** Recipients still queued at the end: 0 unless the time limit cut the run short. */
  waiting: number;
  timedOut: boolean;
  elapsedMs: number;
  /** A greylisted recipient's trace, when one was delivered after a deferral. */
  example?: TraceExample;
  dataDir: string;
}

const DEFAULT_MESSAGES = 3000;
// Retries are due in 2 s then every 4 s and nothing lives past 60 s, so that whatever fails
// expires within the default 90 s limit.
const DEFAULT_TIME_LIMIT_MS = 90_000;
// Progress is sampled and shown this often (milliseconds).
const TICK_MS = 1000;
// One message in HTTP_EVERY per provider goes through the HTTP API, the rest over SMTP.
const HTTP_EVERY = 5;
const SENDER = 'news@shop.demo';
// The greylisted recipient whose records the report shows.
const TRACED_DOMAIN = 'greylist.demo';

/** Runs the whole demo and cleans up after it, also when it fails. */
export async function runDemo(opts: DemoOptions = {}): Promise<DemoResult> {
  const { world, providers } = await startDemoWorld(opts);
  const dataDir = mkdtempSync(join(tmpdir(), 'gridpost-demo-'));
  let engine: Engine | undefined;
  try {
    const apiKey = randomBytes(18).toString('base64url');
    const busy = opts.busyPerSecond ?? DEFAULT_BUSY_PER_SECOND;
    const config = demoConfig(dataDir, world.smtpPort, world.dns.address, apiKey, busy);
    engine = await Engine.start(config, { log: opts.log ?? defaultLog() });
    return await drive({ engine, providers, apiKey, opts, out: opts.output ?? streamOutput() });
  } finally {
    await engine?.stop();
    await world.stop();
    if (!opts.keep) rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The engine's configuration for the demo: loopback only, fast retries, short lives. */
export function demoConfig(
  dataDir: string,
  mxPort: number,
  dns: string,
  apiKey: string,
  busyPerSecond = DEFAULT_BUSY_PER_SECOND,
): Config {
  const raw = {
    hostname: 'engine.gridpost.demo',
    dataDir,
    smtp: { listen: '127.0.0.1:0' },
    http: { listen: '127.0.0.1:0', apiKeys: [{ name: 'demo', key: apiKey }] },
    // A short hold after busy.demo's 421s: long enough to show the pause, short enough for a demo.
    delivery: { port: mxPort, holdAfterFailure: '2s' },
    // Jitter 0.5 spreads the retries of busy.demo's 421s over seconds instead of bunching
    // them into the same one, so its rate limit lets more through each round.
    policy: {
      queues: { default: { retry: ['2s', '4s'], jitter: 0.5, maxAge: '60s' } },
      // Traffic shaping at work: busy.demo's first 421 backs its ready queue off to one
      // connection at 80 % of the rate it accepts, so the rest goes through without 421s.
      shaping: {
        'busy-demo': {
          domain: 'busy.demo',
          backoff: {
            maxConnections: 1,
            messageRate: `${Math.max(1, Math.floor(busyPerSecond * 0.8))}/s`,
          },
        },
      },
      responseRules: {
        'busy-demo-421': { domain: 'busy.demo', code: 421, action: 'backoff', duration: '1m' },
      },
    },
    dns: { servers: [dns] },
    log: { level: 'warn' },
  };
  return validateConfig(raw, 'the demo configuration');
}

/** What one run works with. */
interface Run {
  engine: Engine;
  providers: DemoProvider[];
  apiKey: string;
  opts: DemoOptions;
  out: DemoOutput;
}

/** Injects, watches until nothing waits (or the time limit), reports. */
async function drive(run: Run): Promise<DemoResult> {
  const { engine, providers, out } = run;
  const tally = new RunTally();
  engine.recorder.onPublish((records) => tally.observe(records));
  const plan = injectPlan(providers, run.opts.messages ?? DEFAULT_MESSAGES);
  introduce(run, plan);

  const counts = emptyCounts();
  const startedAt = Date.now();
  const stopInjecting = new AbortController();
  const injection = settled(injectAll(plan, target(run), counts, stopInjecting.signal));
  const end = await watch(run, counts, injection, startedAt);
  stopInjecting.abort();
  await injection.promise;
  if (injection.error) throw injection.error;

  const elapsedMs = Date.now() - startedAt;
  const summaries = providers.map((p) => ({ ...tally.domain(p.domain), behaviour: p.behaviour }));
  const example = await traceExample(run, tally);
  const report = { providers: summaries, injected: counts, elapsedMs, example, ...end };
  const keptDataDir = run.opts.keep ? engine.config.dataDir : undefined;
  formatReport({ ...report, smtpSessions: SMTP_SESSIONS, keptDataDir }).forEach(out.print);
  return { ...report, dataDir: engine.config.dataDir };
}

/** Message i goes to provider i mod P; one in HTTP_EVERY of each provider's goes over HTTP. */
function injectPlan(providers: DemoProvider[], messages: number): InjectPlan {
  const n = providers.length;
  const recipients = Array.from({ length: messages }, (_, i) =>
    providers[i % n]!.recipient(Math.floor(i / n)),
  );
  return {
    sender: SENDER,
    recipients,
    viaHttp: (i) => Math.floor(i / n) % HTTP_EVERY === HTTP_EVERY - 1,
  };
}

function target(run: Run): InjectTarget {
  const { smtp, http } = run.engine.listening;
  return { smtp, http: `http://${http.host}:${http.port}`, apiKey: run.apiKey };
}

/** Prints what runs where before the injection starts. */
function introduce(run: Run, plan: InjectPlan): void {
  const { engine, providers, out } = run;
  const { smtp, http } = engine.listening;
  const total = plan.recipients.length;
  out.print(`Gridpost demo: ${total} messages to ${providers.length} simulated providers`);
  const width = Math.max(...providers.map((p) => p.domain.length));
  for (const p of providers) out.print(`  ${p.domain.padEnd(width)}  MX ${p.mx}  ${p.behaviour}`);
  out.print(`DNS for *.demo: ${engine.config.dns.servers?.join(', ')}`);
  out.print(`Engine: SMTP ${smtp.host}:${smtp.port}, HTTP API http://${http.host}:${http.port}`);
  out.print(`Data directory: ${engine.config.dataDir}${run.opts.keep ? ' (kept)' : ''}`);
  const traced = plan.recipients.find((r) => r.endsWith(`@${TRACED_DOMAIN}`));
  const api = `--api ${http.host}:${http.port} --key ${run.apiKey}`;
  if (traced) out.print(`Trace while it runs: node dist/src/cli/main.js trace ${traced} ${api}`);
  out.print('');
}

/** Shows progress once a second until the queues are empty after the injection, or the limit. */
async function watch(
  run: Run,
  counts: InjectCounts,
  injection: Settled,
  startedAt: number,
): Promise<{ waiting: number; timedOut: boolean }> {
  const limit = run.opts.timeLimitMs ?? DEFAULT_TIME_LIMIT_MS;
  let last = { at: startedAt, delivered: 0 };
  for (;;) {
    await sleep(TICK_MS);
    const p = sample(run.engine, counts, startedAt, last);
    last = { at: startedAt + p.elapsedMs, delivered: p.delivered };
    run.out.progress(formatProgress(p));
    if (injection.error) return { waiting: p.waiting, timedOut: false };
    if (injection.done && p.waiting === 0) return { waiting: 0, timedOut: false };
    if (p.elapsedMs >= limit) return { waiting: p.waiting, timedOut: true };
  }
}

/** Where the run stands now, from the engine's live counters and queue sizes. */
function sample(
  engine: Engine,
  counts: InjectCounts,
  startedAt: number,
  last: { at: number; delivered: number },
): Progress {
  const now = Date.now();
  const c = engine.status.counters;
  let waiting = 0;
  for (const n of engine.spool.queueSizes().values()) waiting += n;
  const seconds = Math.max(now - last.at, 1) / 1000;
  return {
    elapsedMs: now - startedAt,
    injected: counts.accepted,
    delivered: c.delivered,
    deferred: c.deferred,
    bounced: c.bounced,
    expired: c.expired,
    waiting,
    rate: (c.delivered - last.delivered) / seconds,
  };
}

/**
 * The history of a greylisted recipient that was delivered after a deferral, asked of the
 * engine's trace API through the CLI's client: what `gridpost trace <address>` prints.
 */
async function traceExample(run: Run, tally: RunTally): Promise<TraceExample | undefined> {
  const address = tally.retriedExample(TRACED_DOMAIN);
  if (!address) return undefined;
  const { http } = run.engine.listening;
  const client = {
    api: `${http.host}:${http.port}`,
    key: run.apiKey,
    data: run.engine.config.dataDir,
  };
  const doc = await apiGet(client, `/api/v1/trace?q=${encodeURIComponent(address)}`);
  return { address, trace: formatTrace(doc as Parameters<typeof formatTrace>[0]) };
}

/** A promise with its outcome readable at any time. */
interface Settled {
  /** Resolves (never rejects) once the work is over. */
  promise: Promise<void>;
  done: boolean;
  error?: Error;
}

function settled(p: Promise<void>): Settled {
  const s: Settled = { done: false, promise: p };
  s.promise = p.then(
    () => {
      s.done = true;
    },
    (err: unknown) => {
      s.done = true;
      s.error = err instanceof Error ? err : new Error(String(err));
    },
  );
  return s;
}

function defaultLog(): Logger {
  return pino({ level: 'warn', name: 'gridpost-demo' }, pino.destination(2));
}
