/**
 * Shaping at scale (`npm run bench:shaping`): 10,000 sites, 50 egress sources and a backlog of
 * 10,000 then 1,000,000 queued recipients, each in a fresh store. For each backlog an engine
 * (in this process) delivers for a fixed time to smtp-sink through its own DNS (every site has
 * its own MX host name, so MX rollup makes 10,000 sites), with a pool of 50 loopback sources,
 * per-site limits and a message rate on every ready queue. It reports the time per scheduling
 * decision (a recipient taken from the store, its site and source chosen, placed in its ready
 * queue: Scheduler.stats), deliveries per second and the peak RSS of the process.
 *
 *   node dist/bench/shaping-scale.js [--backlogs 10000,1000000] [--seconds 30]
 *
 * Not a test: it prints a table and a JSON line. Needs Postfix's smtp-sink.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { validateConfig } from '../src/config/load.js';
import { Engine } from '../src/engine/engine.js';
import { SmtpSink, TestWorld, peersUnavailable } from '../src/testworld/index.js';
import { fillBacklog } from './support/backlog.js';

const SITES = 10_000;
const SOURCES = 50;
const PER_MESSAGE = 10;
const SINK_IP = '127.0.3.1';
// The backlog becomes due this long after the fill, so that the engine can first learn the
// 10,000 sites (DNS); decisions are timed from WARMUP_MS after that.
const DUE_AFTER_MS = 15_000;
const WARMUP_MS = 3_000;
// Recipients in memory: small against both backlogs, so refills go on for the whole run.
const WINDOW = 5_000;

/** 50 sources on 127.0.4.1..50, one pool, and limits on every ready queue. */
function policy() {
  const sources = Object.fromEntries(
    Array.from({ length: SOURCES }, (_, i) => [
      `ip${i + 1}`,
      { address: `127.0.4.${i + 1}`, helo: `ip${i + 1}.engine.bench` },
    ]),
  );
  const members = Object.fromEntries(Object.keys(sources).map((s) => [s, 1]));
  return {
    queues: { default: { pool: 'all', retry: ['1m'], maxAge: '1d' } },
    sources,
    pools: { all: { sources: members } },
    shaping: {
      everyone: {
        maxConnections: 2,
        messageRate: '600/min',
        connectionRate: '600/min',
        idleTimeout: '200ms',
      },
    },
  };
}

/** Writes `recipients` due at `dueAt`, spread over the sites, straight into a new store. */
function fillStore(dataDir: string, recipients: number, dueAt: number): number {
  return fillBacklog(dataDir, {
    recipients,
    perMessage: PER_MESSAGE,
    domainOf: (n) => `site${n % SITES}.bench`,
    dueAt,
    attempts: 0,
    idPrefix: 'SCALE',
  });
}

/** Every site its own MX host name, all on the sink's address. */
function zone(world: TestWorld): void {
  for (let i = 0; i < SITES; i++) {
    world.dns.set(`site${i}.bench`, { mx: [{ exchange: `mx${i}.site.bench`, priority: 10 }] });
    world.dns.set(`mx${i}.site.bench`, { a: [SINK_IP] });
  }
}

interface Row {
  backlog: number;
  sites: number;
  fillS: number;
  decisions: number;
  usPerDecision: number;
  deliveredPerS: number;
  readyQueues: number;
  peakRssMb: number;
}

/** Resolves every site once (as the first hour of a real backlog would), 20 at a time. */
async function learnSites(engine: Engine): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < SITES; i += 20) {
    const chunk = Array.from({ length: Math.min(20, SITES - i) }, (_, k) => `site${i + k}.bench`);
    await Promise.all(chunk.map((d) => engine.dispatcher.sites.resolve(d)));
  }
  const n = engine.dispatcher.sites.allSites().length;
  console.log(`learned ${n} sites in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return n;
}

async function run(world: TestWorld, backlog: number, seconds: number): Promise<Row> {
  const dataDir = mkdtempSync(join(tmpdir(), 'gridpost-shaping-scale-'));
  try {
    const fillMs = fillStore(dataDir, backlog, Date.now() + DUE_AFTER_MS);
    const dueAt = Date.now() + DUE_AFTER_MS;
    const config = validateConfig({
      hostname: 'engine.bench',
      dataDir,
      smtp: { listen: '127.0.0.1:0' },
      http: { listen: '127.0.0.1:0', apiKeys: [{ name: 'b', key: 'bench-key-0123456789' }] },
      delivery: { port: world.smtpPort, maxConnectionsTotal: 400 },
      dns: { servers: [world.dns.address], cache: '10m', timeout: '10s', tries: 3 },
      spool: { sync: 'normal', window: WINDOW },
      policy: policy(),
      log: { level: 'warn' },
    });
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 200);
    const engine = await Engine.start(config, { log: pino({ level: 'warn' }) });
    const sites = await learnSites(engine);
    if (Date.now() > dueAt) console.warn('the sites were learned after the backlog became due');
    await sleep(Math.max(0, dueAt - Date.now()) + WARMUP_MS);
    const s0 = { ...engine.scheduler.stats };
    const d0 = engine.status.counters.delivered;
    const t0 = performance.now();
    await sleep(seconds * 1000);
    const elapsed = (performance.now() - t0) / 1000;
    const decisions = engine.scheduler.stats.decisions - s0.decisions;
    const ms = engine.scheduler.stats.ms - s0.ms;
    const delivered = engine.status.counters.delivered - d0;
    const readyQueues = engine.controls.readyQueues(1_000_000).length;
    await engine.stop();
    clearInterval(sampler);
    return {
      backlog,
      sites,
      fillS: Math.round(fillMs / 100) / 10,
      decisions,
      usPerDecision: decisions ? Math.round((ms * 1000 * 10) / decisions) / 10 : 0,
      deliveredPerS: Math.round(delivered / elapsed),
      readyQueues,
      peakRssMb: Math.round(peak / 1048576),
    };
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      backlogs: { type: 'string', default: '10000,1000000' },
      seconds: { type: 'string', default: '30' },
    },
  });
  const absent = peersUnavailable(['smtp-sink']);
  if (absent) throw new Error(absent);
  const backlogs = values.backlogs.split(',').map(Number);
  const seconds = Number(values.seconds);
  const world = await TestWorld.start();
  const sink = await SmtpSink.start(SINK_IP, world.smtpPort, { backlog: 1024 });
  zone(world);
  console.log(
    `shaping at scale: ${SITES} sites, ${SOURCES} sources, ${seconds} s timed per backlog ` +
      `after ${WARMUP_MS / 1000} s of warm-up, Node ${process.version}`,
  );
  const rows: Row[] = [];
  try {
    for (const b of backlogs) {
      process.stdout.write(`backlog ${b}: running ... `);
      const row = await run(world, b, seconds);
      console.log(`${row.usPerDecision} µs per decision`);
      rows.push(row);
    }
  } finally {
    sink.stop();
    await world.stop();
  }
  console.table(rows);
  console.log(JSON.stringify({ sites: SITES, sources: SOURCES, seconds, rows }));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
