/**
 * End-to-end throughput (`npm run bench`, from the repository root): Postfix's smtp-source
 * injects N messages of S bytes over C reused sessions into a relay, which delivers them to
 * smtp-sink. Three runs on the same workload, each with a fresh sink:
 *
 *   raw      smtp-source straight into smtp-sink: the ceiling of the load generator and sink;
 *   engine   a `gridpost serve` child process (fresh data dir, spool.sync full) resolving MX
 *            records through a test DNS server in this process;
 *   shaping  the same engine with traffic shaping at work: two egress sources on loopback in
 *            a pool, their connections limited, message and connection rates throttled
 *            (set above what the load reaches, so the cost is measured, not the limit), the
 *            built-in and a custom response rule matched against every reply, and signed
 *            return paths (VERP, bounces.domain): one HMAC and one transaction per recipient;
 *   dkim     the plain engine with the sender's domain a maildomain whose RSA-2048 domain key
 *            is active: every message is DKIM-signed at intake (relaxed/relaxed), and the
 *            Reception records are checked for the signature afterwards;
 *   postfix  a private Postfix instance (stock process limits and durability) with a relayhost.
 *
 *   node dist/bench/bench.js [--messages 20000] [--size 5120] [--sessions 20] [--skip-postfix]
 *     [--skip-shaping] [--skip-dkim] [--dkim-algorithm rsa|ed25519]
 *
 * End to end means from the start of injection until smtp-sink's counter (-c, read from a
 * pipe) reaches N. A side client of ours sends one message every 20 ms meanwhile and times each
 * 250: the injection latency under load. Not a test: it prints a table and a JSON line.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { RFC5321_TIMEOUTS, openSession } from '../src/delivery/smtp-client.js';
import {
  PrivatePostfix,
  SmtpSink,
  TestWorld,
  killOnExit,
  peersUnavailable,
  smtpSource,
  type SourceLoad,
} from '../src/testworld/index.js';
import { freePort, kill9, spawnEngine, writeChildConfig } from '../test/support/child-engine.js';
import { TEST_KEY } from '../test/support/harness.js';

/** The workload, from the command line. */
interface Options {
  messages: number;
  size: number;
  sessions: number;
  skipPostfix: boolean;
  skipShaping: boolean;
  skipDkim: boolean;
  dkimAlgorithm: 'rsa' | 'ed25519';
}

/** What one run measured. Rates in messages per second, times in milliseconds. */
interface Figures {
  run: string;
  endToEndRate: number;
  injectionRate: number;
  injectionMs: number;
  endToEndMs: number;
  /** smtp-source's mean time per message in one session: sessions × injection time / N. */
  perMessageMs: number;
  latency?: { p50: number; p99: number; samples: number };
  peakRssMb?: number;
  /** The engine's own delivered counter (GET /api/v1/status) at the end, as a cross-check. */
  engineDelivered?: number;
}

// Where each smtp-sink listens (all on the test world's one SMTP port): a fresh sink per run,
// so that each counter starts at zero. The latency sample has its own sink, uncounted.
const SINK = {
  raw: '127.0.2.1',
  engine: '127.0.2.2',
  latency: '127.0.2.3',
  postfix: '127.0.2.4',
  shaping: '127.0.2.5',
  dkim: '127.0.2.6',
};
const SENDER = 'load@source.bench';
const RECIPIENT = 'rx@sink.bench';
const LATENCY_DOMAIN = 'latency.bench';
// The side client sends one message per 20 ms: at most 50 msg/s, a few % of the load measured,
// so it observes the latency under that load without adding much of its own.
const SAMPLE_INTERVAL_MS = 20;
// After injection ends, how long the last messages may take to reach the sink: 2 minutes,
// plus 1 ms per message, is far beyond any healthy run.
const DRAIN_BASE_MS = 120_000;
// A stopped engine gets this long (ms) to exit on SIGTERM before SIGKILL.
const STOP_GRACE_MS = 10_000;
// smtp-sink's listen backlog: smtp-source opens all its sessions at once.
const SINK_BACKLOG = 1024;

/** Undo steps, run newest first at the end, on an error and on SIGINT/SIGTERM. */
class Cleanup {
  private readonly steps: (() => unknown)[] = [];

  add(step: () => unknown): void {
    this.steps.push(step);
  }

  async run(): Promise<void> {
    for (const step of this.steps.splice(0).reverse()) {
      try {
        await step();
      } catch (err) {
        console.error(`cleanup: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A message of about `bytes` bytes: a few header fields and 76-column lines. */
function makeMessage(bytes: number, to: string): Buffer {
  const lines = [`From: <${SENDER}>`, `To: <${to}>`, 'Subject: latency sample', ''];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const line = `line ${i} `.padEnd(76, 'x');
    lines.push(line);
    size += line.length + 2;
  }
  return Buffer.from(lines.join('\r\n') + '\r\n');
}

/** One session of ours sending a message per SAMPLE_INTERVAL_MS until stopped; 250 times. */
async function sampleLatency(port: number, size: number, stop: { now: boolean }) {
  const samples: number[] = [];
  const opened = await openSession({
    ip: '127.0.0.1',
    port,
    mxHost: 'relay-under-test',
    helo: 'latency.bench',
    tls: 'disabled',
    timeouts: RFC5321_TIMEOUTS,
  });
  if (!opened.ok) throw new Error(`latency client: ${opened.reply.code} ${opened.reply.text}`);
  for (let i = 0; !stop.now && opened.session.usable; i++) {
    const to = `s${i}@${LATENCY_DOMAIN}`;
    const started = performance.now();
    const res = await opened.session.send(
      { from: SENDER, recipients: [to] },
      makeMessage(size, to),
    );
    if (res.data?.code === 250) samples.push(performance.now() - started);
    await sleep(SAMPLE_INTERVAL_MS);
  }
  await opened.session.close();
  return samples;
}

/** The p-th percentile (0..100) of unsorted values, nearest rank. */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] ?? NaN;
}

/** The workload as smtp-source runs it, into host:port. */
function workload(o: Options, host: string, port: number): SourceLoad {
  const { sessions, messages, size } = o;
  return { host, port, sessions, messages, size, from: SENDER, to: RECIPIENT };
}

/** A fresh smtp-sink, so a fresh counter, at host on the test world's SMTP port. */
function startSink(world: TestWorld, host: string): Promise<SmtpSink> {
  return SmtpSink.start(host, world.smtpPort, { backlog: SINK_BACKLOG });
}

/** Where a run injects, the sink that counts its messages, and whether to sample latency. */
interface Target {
  host: string;
  port: number;
  sink: SmtpSink;
  sample: boolean;
}

/** Runs the workload into the target and times it until its sink has counted every message. */
async function measure(name: string, target: Target, o: Options): Promise<Figures> {
  const { host, port, sink } = target;
  const stop = { now: false };
  const t0 = performance.now();
  const samples = target.sample ? sampleLatency(port, o.size, stop).catch(noSamples) : undefined;
  try {
    // smtp-source exits non-zero on any reply it did not expect.
    const source = await smtpSource(workload(o, host, port));
    if (source.code !== 0)
      throw new Error(`${name}: smtp-source failed: ${source.stdout}${source.stderr}`);
    const injectedAt = performance.now();
    const doneAt = await sink.reached(o.messages, DRAIN_BASE_MS + o.messages);
    stop.now = true;
    const figures = timings(name, o, injectedAt - t0, doneAt - t0);
    const latencies = (await samples) ?? [];
    if (latencies.length > 0) figures.latency = summarise(latencies);
    return figures;
  } finally {
    stop.now = true;
  }
}

/** A latency client that could not start: the run goes on without a sample. */
function noSamples(err: unknown): number[] {
  console.warn(`latency sample: ${err instanceof Error ? err.message : String(err)}`);
  return [];
}

/** The rates from the two times (ms since the start of injection). */
function timings(name: string, o: Options, injectionMs: number, endToEndMs: number): Figures {
  return {
    run: name,
    endToEndRate: rate(o.messages, endToEndMs),
    injectionRate: rate(o.messages, injectionMs),
    injectionMs,
    endToEndMs,
    perMessageMs: (o.sessions * injectionMs) / o.messages,
  };
}

function rate(messages: number, ms: number): number {
  return Math.round((messages / ms) * 1000);
}

function summarise(latencies: number[]) {
  return {
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    samples: latencies.length,
  };
}

/** The raw limit: smtp-source straight into smtp-sink (no latency sample: it would count). */
async function benchRaw(world: TestWorld, o: Options, cleanup: Cleanup): Promise<Figures> {
  const sink = await startSink(world, SINK.raw);
  cleanup.add(() => sink.stop());
  const target = { host: SINK.raw, port: world.smtpPort, sink, sample: false };
  const figures = await measure('raw: smtp-source -> smtp-sink', target, o);
  sink.stop();
  return figures;
}

/**
 * The shaping run's policy: two sources of five connections each (the stock ready queue has
 * ten), rates far above the load so that every transaction passes the throttles without
 * waiting, and a custom response rule next to the built-ins.
 */
const SHAPING_POLICY = {
  queues: { default: { pool: 'bench' } },
  sources: {
    a: { address: '127.0.0.21', helo: 'a.engine.bench' },
    b: { address: '127.0.0.22', helo: 'b.engine.bench' },
  },
  pools: { bench: { sources: { a: 1, b: 1 } } },
  shaping: {
    everyone: { maxConnections: 5, messageRate: '1000000/min', connectionRate: '6000/min' },
    sink: { domain: 'sink.bench', maxMessagesPerConnection: 1000 },
  },
  responseRules: {
    'sink-busy': { domain: 'sink.bench', code: 421, text: 'busy', action: 'backoff' },
  },
};

/** Which engine run: stock, with traffic shaping and VERP, or with DKIM signing. */
type EngineRun = 'plain' | 'shaping' | 'dkim';

/** The engine as a child process, delivering through MX lookups to its own sink. */
async function benchEngine(
  world: TestWorld,
  o: Options,
  cleanup: Cleanup,
  mode: EngineRun = 'plain',
): Promise<Figures> {
  const shaping = mode === 'shaping';
  const sinkIp = mode === 'plain' ? SINK.engine : SINK[mode];
  const sink = await startSink(world, sinkIp);
  cleanup.add(() => sink.stop());
  pointMx(world, 'sink.bench', sinkIp);
  const dataDir = mkdtempSync(join(tmpdir(), 'gridpost-bench-'));
  cleanup.add(() => rmSync(dataDir, { recursive: true, force: true }));
  const { file, smtpPort, httpPort } = await writeChildConfig(world, dataDir, {
    hostname: 'engine.bench',
    // Stock delivery, queue and spool settings, except the sinks' port; fsync on every commit.
    delivery: { port: world.smtpPort },
    policy: shaping ? SHAPING_POLICY : { queues: { default: {} } },
    ...(shaping ? { bounces: { domain: 'bounces.engine.bench' } } : {}),
    spool: { sync: 'full' },
    log: { level: 'warn' },
  });
  const engine = await spawnEngine(file, world);
  killOnExit(engine);
  cleanup.add(() => stopEngine(engine));
  if (mode === 'dkim') await activateDkim(httpPort, o.dkimAlgorithm);
  const target = { host: '127.0.0.1', port: smtpPort, sink, sample: true };
  const name = {
    plain: 'gridpost engine',
    shaping: 'gridpost engine, shaping',
    dkim: `gridpost engine, DKIM ${o.dkimAlgorithm}`,
  }[mode];
  const figures = await measure(name, target, o);
  figures.peakRssMb = peakRssMb(engine.pid!);
  figures.engineDelivered = await engineDelivered(httpPort);
  if (mode === 'dkim') await assertSigned(httpPort);
  await stopEngine(engine);
  sink.stop();
  return figures;
}

/** Makes the sender's domain a maildomain with an active domain key (no DNS needed to sign). */
async function activateDkim(httpPort: number, algorithm: 'rsa' | 'ed25519'): Promise<void> {
  const domain = SENDER.slice(SENDER.indexOf('@') + 1);
  const base = `/api/v1/maildomains/${domain}`;
  await call(httpPort, 'PUT', base, {});
  await call(httpPort, 'POST', `${base}/keys`, { selector: 'bench', algorithm });
  await call(httpPort, 'POST', `${base}/keys/bench/activate`, { force: true });
}

/** Fails the run unless the first Reception record says the message was DKIM-signed. */
async function assertSigned(httpPort: number): Promise<void> {
  const doc = (await call(httpPort, 'GET', '/api/v1/events?after=0&type=Reception&limit=1')) as {
    events: { signatures?: { dkim: unknown[] } }[];
  };
  if (!doc.events[0]?.signatures?.dkim.length) throw new Error('dkim: messages were not signed');
}

/** One call to the engine's API; throws on an error answer. */
async function call(httpPort: number, method: string, path: string, body?: unknown) {
  const res = await fetch(`http://127.0.0.1:${httpPort}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${TEST_KEY}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const doc = (await res.json().catch(() => null)) as unknown;
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(doc)}`);
  return doc;
}

/** MX <domain> -> mx.<domain> -> ip, in the test DNS server. */
function pointMx(world: TestWorld, domain: string, ip: string): void {
  world.dns.set(domain, { mx: [{ exchange: `mx.${domain}`, priority: 10 }] });
  world.dns.set(`mx.${domain}`, { a: [ip] });
}

/** VmHWM (peak resident set) of a live process, in MiB, from /proc. */
function peakRssMb(pid: number): number | undefined {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmHWM:\s+(\d+) kB/m.exec(status)?.[1];
  return kb === undefined ? undefined : Number(kb) / 1024;
}

/** The engine's delivered counter since start. */
async function engineDelivered(httpPort: number): Promise<number | undefined> {
  const res = await fetch(`http://127.0.0.1:${httpPort}/api/v1/status`, {
    headers: { authorization: `Bearer ${TEST_KEY}` },
  });
  const doc = (await res.json()) as { counters?: { delivered?: number } };
  return doc.counters?.delivered;
}

/** SIGTERM (the engine commits and closes its store), SIGKILL after STOP_GRACE_MS. */
async function stopEngine(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => void kill9(child), STOP_GRACE_MS);
  await exited;
  clearTimeout(timer);
}

/** The same workload through a private Postfix relay. */
async function benchPostfix(world: TestWorld, o: Options, cleanup: Cleanup): Promise<Figures> {
  const sink = await startSink(world, SINK.postfix);
  cleanup.add(() => sink.stop());
  const port = await freePort();
  const next = (ip: string) => `[${ip}]:${world.smtpPort}`;
  const postfix = await PrivatePostfix.start({
    listen: `127.0.0.1:${port}`,
    hostname: 'relay.postfix.bench',
    params: {
      // Brackets: the IP itself, no MX lookup. The latency sample goes to its own sink.
      relayhost: next(SINK.postfix),
      transport_maps: `inline:{ ${LATENCY_DOMAIN}=smtp:${next(SINK.latency)} }`,
    },
  });
  cleanup.add(() => postfix.stop());
  const target = { host: '127.0.0.1', port, sink, sample: true };
  const figures = await measure('postfix relay', target, o);
  if (!(await postfix.queueEmpty())) console.warn('postfix: the queue is not empty at the end');
  await postfix.stop();
  sink.stop();
  return figures;
}

/** The command line, validated. */
function options(): Options {
  const { values } = parseArgs({
    options: {
      messages: { type: 'string', default: '20000' },
      size: { type: 'string', default: '5120' },
      sessions: { type: 'string', default: '20' },
      'skip-postfix': { type: 'boolean', default: false },
      'skip-shaping': { type: 'boolean', default: false },
      'skip-dkim': { type: 'boolean', default: false },
      'dkim-algorithm': { type: 'string', default: 'rsa' },
    },
  });
  const algorithm = values['dkim-algorithm'];
  if (algorithm !== 'rsa' && algorithm !== 'ed25519') {
    throw new Error('--dkim-algorithm wants rsa or ed25519');
  }
  const int = (name: string, v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} wants a positive integer`);
    return n;
  };
  return {
    messages: int('messages', values.messages),
    size: int('size', values.size),
    sessions: int('sessions', values.sessions),
    skipPostfix: values['skip-postfix'],
    skipShaping: values['skip-shaping'],
    skipDkim: values['skip-dkim'],
    dkimAlgorithm: algorithm,
  };
}

/** Why Postfix cannot be measured here, or undefined. */
function postfixUnavailable(): string | undefined {
  return peersUnavailable(['postfix', 'postconf', 'postqueue'], { root: true });
}

/** What is measured and how, before the figures. */
function printHeader(o: Options): void {
  console.log(
    `Gridpost bench: ${o.messages} messages of ${o.size} bytes over ${o.sessions} reused ` +
      `sessions (smtp-source -d), ${availableParallelism()} CPUs, Node ${process.version}`,
  );
  console.log(
    'End to end: from the start of injection until smtp-sink -c, read from a pipe, counts the\n' +
      'last message. Latency: our own client, one message per 20 ms during the load, time to ' +
      'the 250.\n',
  );
}

/** The rates, then the latency and memory, one row per run. */
function printTable(rows: Figures[], engineToPostfix: number | undefined): void {
  const head = ['run', 'e2e msg/s', 'inject msg/s', 'e2e s', 'inject s', 'ms/msg/session'];
  const table = rows.map((f) => [
    f.run,
    `${f.endToEndRate}`,
    `${f.injectionRate}`,
    (f.endToEndMs / 1000).toFixed(2),
    (f.injectionMs / 1000).toFixed(2),
    f.perMessageMs.toFixed(2),
  ]);
  printColumns([head, ...table]);
  console.log('');
  printColumns([
    ['run', '250 p50 ms', '250 p99 ms', 'samples', 'peak RSS MiB', 'engine delivered'],
    ...rows.map((f) => [
      f.run,
      f.latency ? f.latency.p50.toFixed(1) : '-',
      f.latency ? f.latency.p99.toFixed(1) : '-',
      `${f.latency?.samples ?? '-'}`,
      f.peakRssMb === undefined ? '-' : f.peakRssMb.toFixed(0),
      `${f.engineDelivered ?? '-'}`,
    ]),
  ]);
  if (engineToPostfix === undefined) return;
  console.log(`\nratio engine/postfix (end to end): ${engineToPostfix.toFixed(2)}`);
}

/** Rows as aligned columns: the first left-aligned, the numbers right-aligned. */
function printColumns(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  for (const r of rows) {
    const cells = r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)));
    console.log(cells.join('  '));
  }
}

/** The one-line JSON summary. */
function summary(
  o: Options,
  raw: Figures,
  engine: Figures,
  postfix?: Figures,
  shaping?: Figures,
  dkim?: Figures,
) {
  const brief = (f: Figures) => ({
    e2e: f.endToEndRate,
    inject: f.injectionRate,
    p50Ms: f.latency && round1(f.latency.p50),
    p99Ms: f.latency && round1(f.latency.p99),
    peakRssMb: f.peakRssMb && Math.round(f.peakRssMb),
  });
  return JSON.stringify({
    messages: o.messages,
    size: o.size,
    sessions: o.sessions,
    counted: 'smtp-sink -c',
    raw: brief(raw),
    engine: brief(engine),
    shaping: shaping ? brief(shaping) : null,
    dkim: dkim ? brief(dkim) : null,
    postfix: postfix ? brief(postfix) : null,
    ratio: postfix ? round2(ratio(engine, postfix)) : null,
  });
}

const round1 = (n: number) => Math.round(n * 10) / 10;
const round2 = (n: number) => Math.round(n * 100) / 100;

async function main(): Promise<void> {
  const o = options();
  const absent = peersUnavailable(['smtp-source', 'smtp-sink']);
  if (absent) throw new Error(absent);
  const cleanup = new Cleanup();
  const onSignal = (signal: string) => {
    console.error(`\n${signal}: stopping every process started and removing temp dirs`);
    void cleanup.run().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    printHeader(o);
    const { raw, engine, shaping, dkim, postfix } = await runAll(o, cleanup);
    console.log('');
    const optional = [shaping, dkim, postfix].filter((f): f is Figures => f !== undefined);
    printTable([raw, engine, ...optional], postfix && ratio(engine, postfix));
    for (const [what, f] of [
      ['shaping', shaping],
      ['DKIM signing', dkim],
    ] as const) {
      if (!f) continue;
      const kept = (100 * f.endToEndRate) / engine.endToEndRate;
      console.log(`${what} keeps ${kept.toFixed(1)} % of the engine's end-to-end rate`);
    }
    console.log(`\n${summary(o, raw, engine, postfix, shaping, dkim)}`);
  } finally {
    await cleanup.run();
  }
}

/** The three runs, in order, against one test world (its DNS and its SMTP port). */
async function runAll(o: Options, cleanup: Cleanup) {
  const world = await TestWorld.start({ smtpPort: await freePort() });
  cleanup.add(() => world.stop());
  const latency = await startSink(world, SINK.latency);
  cleanup.add(() => latency.stop());
  pointMx(world, LATENCY_DOMAIN, SINK.latency);
  const raw = await step('raw', () => benchRaw(world, o, cleanup));
  const engine = await step('engine', () => benchEngine(world, o, cleanup));
  const shaping = o.skipShaping
    ? undefined
    : await step('shaping', () => benchEngine(world, o, cleanup, 'shaping'));
  const dkim = o.skipDkim
    ? undefined
    : await step('dkim', () => benchEngine(world, o, cleanup, 'dkim'));
  const noPostfix = o.skipPostfix ? '--skip-postfix' : postfixUnavailable();
  if (noPostfix) console.log(`postfix: skipped (${noPostfix})`);
  const postfix = noPostfix
    ? undefined
    : await step('postfix', () => benchPostfix(world, o, cleanup));
  return { raw, engine, shaping, dkim, postfix };
}

function ratio(engine: Figures, postfix: Figures): number {
  return engine.endToEndRate / postfix.endToEndRate;
}

/** Runs one measurement, saying so first (a run can take a while). */
async function step(name: string, fn: () => Promise<Figures>): Promise<Figures> {
  process.stdout.write(`${name}: running ... `);
  const f = await fn();
  console.log(`${f.endToEndRate} msg/s end to end`);
  return f;
}

main().catch((err: unknown) => {
  console.error(`\nbench failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
