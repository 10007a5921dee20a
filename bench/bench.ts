/**
 * End-to-end throughput (`npm run bench`, from the repository root): Postfix's smtp-source
 * injects N messages of S bytes over C reused sessions into a relay, which delivers them to
 * smtp-sink. Three runs on the same workload, each with a fresh sink:
 *
 *   raw      smtp-source straight into smtp-sink: the ceiling of the load generator and sink;
 *   engine   a `gridpost serve` child process (fresh data dir, spool.sync full) resolving MX
 *            records through a test DNS server in this process;
 *   postfix  a private Postfix instance (stock process limits and durability) with a relayhost.
 *
 *   node dist/bench/bench.js [--messages 20000] [--size 5120] [--sessions 20] [--skip-postfix]
 *
 * End to end means from the start of injection until smtp-sink's counter (-c, read from a
 * pipe) reaches N. A side client of ours sends one message every 20 ms meanwhile and times each
 * 250: the injection latency under load. Not a test: it prints a table and a JSON line.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, chmodSync, chownSync, constants, mkdirSync, mkdtempSync } from 'node:fs';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { RFC5321_TIMEOUTS, openSession } from '../src/delivery/smtp-client.js';
import { TestWorld } from '../src/testworld/index.js';
import { freePort, kill9, spawnEngine, writeChildConfig } from '../test/support/child-engine.js';
import { TEST_KEY } from '../test/support/harness.js';

/** The workload, from the command line. */
interface Options {
  messages: number;
  size: number;
  sessions: number;
  skipPostfix: boolean;
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
const SINK = { raw: '127.0.2.1', engine: '127.0.2.2', latency: '127.0.2.3', postfix: '127.0.2.4' };
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
// Postfix's mail_owner: the instance's data directory (master.lock) must belong to it.
const POSTFIX_USER = 'postfix';

/** Every child process and private Postfix config dir, so that none outlives the bench. */
const children = new Set<ChildProcess>();
const postfixConfs = new Set<string>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
  for (const conf of postfixConfs) spawnSync(tool('postfix') ?? 'postfix', ['-c', conf, 'abort']);
});

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

/** The absolute path of a program on PATH or in /usr/sbin, or undefined. */
function tool(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin'];
  for (const dir of dirs.filter(Boolean)) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** Starts a program, tracked so that it cannot outlive the bench. */
function start(name: string, args: string[], stdout: 'pipe' | 'ignore' = 'ignore') {
  const child = spawn(tool(name) ?? name, args, { stdio: ['ignore', stdout, 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Runs a program to its end; resolves with its exit code and output (stdout and stderr). */
function run(name: string, args: string[]): Promise<{ code: number | null; out: string }> {
  const child = start(name, args, 'pipe');
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, out }));
  });
}

/** Resolves once host:port accepts a TCP connection; polls every 20 ms for up to 10 s. */
async function listening(host: string, port: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host, port }, () => (socket.destroy(), resolve(true)));
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port}`);
    await sleep(20);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** smtp-sink with -c: its counter goes to a pipe, and we note when it reaches a count. */
class SmtpSink {
  private messages = 0;
  private readonly waiters = new Set<{ n: number; resolve: (at: number) => void }>();

  private constructor(private readonly child: ChildProcess) {
    child.stdout!.on('data', (d: Buffer) => this.observe(d.toString()));
    child.stderr!.on('data', (d: Buffer) => process.stderr.write(`smtp-sink: ${d.toString()}`));
  }

  /** Starts a sink on host:port; as root it must drop privileges (-u). */
  static async start(host: string, port: number): Promise<SmtpSink> {
    const user = process.getuid?.() === 0 ? ['-u', 'nobody'] : [];
    // Backlog 1024: smtp-source opens all its sessions at once.
    const child = start('smtp-sink', [...user, '-c', `${host}:${port}`, '1024'], 'pipe');
    await listening(host, port);
    return new SmtpSink(child);
  }

  /** The performance.now() at which the counter reached n; rejects after timeoutMs. */
  reached(n: number, timeoutMs: number): Promise<number> {
    if (this.messages >= n) return Promise.resolve(performance.now());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`smtp-sink counted ${this.messages} of ${n} messages in ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = { n, resolve: (at: number) => (clearTimeout(timer), resolve(at)) };
      this.waiters.add(waiter);
    });
  }

  stop(): void {
    this.child.kill('SIGTERM');
  }

  /** Reads counter lines ("sess=1 quit=0 mesg=42", each ended by a bare CR). */
  private observe(text: string): void {
    const all = [...text.matchAll(/mesg=(\d+)/g)];
    const last = all[all.length - 1];
    if (!last) return;
    this.messages = Number(last[1]);
    const now = performance.now();
    for (const w of this.waiters) {
      if (this.messages < w.n) continue;
      this.waiters.delete(w);
      w.resolve(now);
    }
  }
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

/** smtp-source's arguments for the workload: -d keeps each session for its next message. */
function workload(o: Options, host: string, port: number): string[] {
  const load = ['-s', `${o.sessions}`, '-m', `${o.messages}`, '-l', `${o.size}`, '-d'];
  return [...load, '-f', SENDER, '-t', RECIPIENT, `${host}:${port}`];
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
    const source = await run('smtp-source', workload(o, host, port));
    if (source.code !== 0) throw new Error(`${name}: smtp-source failed: ${source.out}`);
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
  const sink = await SmtpSink.start(SINK.raw, world.smtpPort);
  cleanup.add(() => sink.stop());
  const target = { host: SINK.raw, port: world.smtpPort, sink, sample: false };
  const figures = await measure('raw: smtp-source -> smtp-sink', target, o);
  sink.stop();
  return figures;
}

/** The engine as a child process, delivering through MX lookups to its own sink. */
async function benchEngine(world: TestWorld, o: Options, cleanup: Cleanup): Promise<Figures> {
  const sink = await SmtpSink.start(SINK.engine, world.smtpPort);
  cleanup.add(() => sink.stop());
  pointMx(world, 'sink.bench', SINK.engine);
  const dataDir = mkdtempSync(join(tmpdir(), 'gridpost-bench-'));
  cleanup.add(() => rmSync(dataDir, { recursive: true, force: true }));
  const { file, smtpPort, httpPort } = await writeChildConfig(world, dataDir, {
    hostname: 'engine.bench',
    // Stock delivery, queue and spool settings, except the sinks' port; fsync on every commit.
    delivery: { port: world.smtpPort },
    queues: { default: {} },
    spool: { sync: 'full' },
    log: { level: 'warn' },
  });
  const engine = await spawnEngine(file, world);
  children.add(engine);
  cleanup.add(() => stopEngine(engine));
  const target = { host: '127.0.0.1', port: smtpPort, sink, sample: true };
  const figures = await measure('gridpost engine', target, o);
  figures.peakRssMb = peakRssMb(engine.pid!);
  figures.engineDelivered = await engineDelivered(httpPort);
  await stopEngine(engine);
  sink.stop();
  return figures;
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

/** A private Postfix instance relaying everything to one sink. */
class RelayPostfix {
  private stopped = false;

  private constructor(readonly dir: string) {}

  /** Configures the instance in a fresh temp dir, runs `postfix check` and `postfix start`. */
  static async start(smtpdPort: number, params: Record<string, string>): Promise<RelayPostfix> {
    const pf = new RelayPostfix(mkdtempSync(join(tmpdir(), 'gridpost-bench-postfix-')));
    try {
      pf.layout(smtpdPort);
      const all = { ...relayParams(pf.dir), ...params };
      await pf.expect('postconf', ['-c', pf.conf, '-e', ...Object.entries(all).map(kv)]);
      await pf.expect('postfix', ['-c', pf.conf, 'check']);
      postfixConfs.add(pf.conf);
      await pf.expect('postfix', ['-c', pf.conf, 'start']);
      return pf;
    } catch (err) {
      await pf.stop();
      throw err;
    }
  }

  get conf(): string {
    return join(this.dir, 'conf');
  }

  /** True when `postqueue -p` says the queue is empty. */
  async queueEmpty(): Promise<boolean> {
    const res = await run('postqueue', ['-c', this.conf, '-p']);
    return /Mail queue is empty/.test(res.out);
  }

  /** `postfix stop` (abort when that fails), then removes the instance's files. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (postfixConfs.delete(this.conf)) {
      const res = await run('postfix', ['-c', this.conf, 'stop']);
      if (res.code !== 0) await run('postfix', ['-c', this.conf, 'abort']);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The directories (data belongs to mail_owner), master.cf and an empty main.cf. */
  private layout(smtpdPort: number): void {
    // Postfix daemons running as mail_owner must reach the queue inside our 0700 temp dir.
    chmodSync(this.dir, 0o755);
    for (const d of ['conf', 'queue', 'data']) mkdirSync(join(this.dir, d));
    chownSync(join(this.dir, 'data'), uidOf(POSTFIX_USER), 0);
    writeFileSync(join(this.conf, 'master.cf'), masterCf(`127.0.0.1:${smtpdPort}`));
    writeFileSync(join(this.conf, 'main.cf'), '');
  }

  /** Runs a Postfix command that must succeed; quotes the maillog's tail when it does not. */
  private async expect(name: string, args: string[]): Promise<void> {
    const res = await run(name, args);
    if (res.code === 0) return;
    const log = readTail(join(this.dir, 'maillog'));
    throw new Error(`${name} ${args.slice(2).join(' ')} failed: ${res.out}\n${log}`);
  }
}

function kv([k, v]: [string, string]): string {
  return `${k}=${v}`;
}

function uidOf(user: string): number {
  const res = spawnSync('id', ['-u', user], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`no user ${user}: is Postfix installed?`);
  return Number(res.stdout.trim());
}

/** The last lines of a log file, to quote in an error. */
function readTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-10).join('\n');
  } catch {
    return '(no maillog)';
  }
}

/**
 * master.cf: smtpd on `listen` and the stock daemons of a relay. None is chrooted: Debian's
 * master.cf chroots most of them into the queue directory, which in a private instance lacks
 * the files they would need there (resolv.conf, services, ...).
 */
function masterCf(listen: string): string {
  const services = [
    `${listen} inet n - n - - smtpd`,
    'pickup unix n - n 60 1 pickup',
    'cleanup unix n - n - 0 cleanup',
    'qmgr unix n - n 300 1 qmgr',
    'rewrite unix - - n - - trivial-rewrite',
    'bounce unix - - n - 0 bounce',
    'defer unix - - n - 0 bounce',
    'trace unix - - n - 0 bounce',
    'verify unix - - n - 1 verify',
    'flush unix n - n 1000? 0 flush',
    'proxymap unix - - n - - proxymap',
    'smtp unix - - n - - smtp',
    'relay unix - - n - - smtp',
    'showq unix n - n - - showq',
    'error unix - - n - - error',
    'retry unix - - n - - error',
    'discard unix - - n - - discard',
    'anvil unix - - n - 1 anvil',
    'scache unix - - n - 1 scache',
    'postlog unix-dgram n - n - 1 postlogd',
  ];
  return services.join('\n') + '\n';
}

/** main.cf of the relay: its own directories, a file log, no local delivery, no DNS. */
function relayParams(dir: string): Record<string, string> {
  return {
    compatibility_level: '3.6',
    queue_directory: join(dir, 'queue'),
    data_directory: join(dir, 'data'),
    // No syslog here: log to a file, which must sit under one of these prefixes.
    maillog_file: join(dir, 'maillog'),
    maillog_file_prefixes: dir,
    myhostname: 'relay.postfix.bench',
    mydestination: 'localhost',
    // `postfix check` wants an address a local interface carries.
    inet_interfaces: '127.0.0.1',
    inet_protocols: 'ipv4',
    mynetworks: '127.0.0.0/8',
    alias_maps: '',
    alias_database: '',
    // There is no DNS server for Postfix here; the client is always 127.0.0.1.
    smtpd_peername_lookup: 'no',
  };
}

/** The same workload through a private Postfix relay. */
async function benchPostfix(world: TestWorld, o: Options, cleanup: Cleanup): Promise<Figures> {
  const sink = await SmtpSink.start(SINK.postfix, world.smtpPort);
  cleanup.add(() => sink.stop());
  const port = await freePort();
  const next = (ip: string) => `[${ip}]:${world.smtpPort}`;
  const postfix = await RelayPostfix.start(port, {
    // Brackets: the IP itself, no MX lookup. The latency sample goes to its own sink.
    relayhost: next(SINK.postfix),
    transport_maps: `inline:{ ${LATENCY_DOMAIN}=smtp:${next(SINK.latency)} }`,
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
    },
  });
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
  };
}

/** Why Postfix cannot be measured here, or undefined. */
function postfixUnavailable(): string | undefined {
  const absent = ['postfix', 'postconf', 'postqueue'].filter((n) => !tool(n));
  if (absent.length > 0) return `${absent.join(', ')} not installed`;
  if (process.getuid?.() !== 0) return 'a private Postfix instance needs root';
  return undefined;
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
function summary(o: Options, raw: Figures, engine: Figures, postfix?: Figures) {
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
    postfix: postfix ? brief(postfix) : null,
    ratio: postfix ? round2(ratio(engine, postfix)) : null,
  });
}

const round1 = (n: number) => Math.round(n * 10) / 10;
const round2 = (n: number) => Math.round(n * 100) / 100;

async function main(): Promise<void> {
  const o = options();
  const absent = ['smtp-source', 'smtp-sink'].filter((n) => !tool(n)).join(', ');
  if (absent) throw new Error(`${absent} not installed (apt-get install postfix)`);
  const cleanup = new Cleanup();
  const onSignal = (signal: string) => {
    console.error(`\n${signal}: stopping every process started and removing temp dirs`);
    void cleanup.run().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    printHeader(o);
    const { raw, engine, postfix } = await runAll(o, cleanup);
    console.log('');
    printTable([raw, engine, ...(postfix ? [postfix] : [])], postfix && ratio(engine, postfix));
    console.log(`\n${summary(o, raw, engine, postfix)}`);
  } finally {
    await cleanup.run();
  }
}

/** The three runs, in order, against one test world (its DNS and its SMTP port). */
async function runAll(o: Options, cleanup: Cleanup) {
  const world = await TestWorld.start({ smtpPort: await freePort() });
  cleanup.add(() => world.stop());
  const latency = await SmtpSink.start(SINK.latency, world.smtpPort);
  cleanup.add(() => latency.stop());
  pointMx(world, LATENCY_DOMAIN, SINK.latency);
  const raw = await step('raw', () => benchRaw(world, o, cleanup));
  const engine = await step('engine', () => benchEngine(world, o, cleanup));
  const noPostfix = o.skipPostfix ? '--skip-postfix' : postfixUnavailable();
  if (noPostfix) console.log(`postfix: skipped (${noPostfix})`);
  const postfix = noPostfix
    ? undefined
    : await step('postfix', () => benchPostfix(world, o, cleanup));
  return { raw, engine, postfix };
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
