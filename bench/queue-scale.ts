/**
 * Memory does not grow with the queue: fills a store with N deferred recipients (default
 * 1,000,000, in 100,000 messages of 10 recipients, next attempt in an hour), starts an engine
 * on it and reports start-up time, RSS, and the time to accept and deliver 1,000 fresh
 * messages past the backlog. Usage: node dist/bench/queue-scale.js [--recipients N]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { validateConfig } from '../src/config/load.js';
import { Engine } from '../src/engine/engine.js';
import { TestWorld } from '../src/testworld/index.js';
import { injectLoad } from '../test/support/load.js';
import { fillBacklog } from './support/backlog.js';

const PER_MESSAGE = 10;

/** The backlog: deferred (one attempt made), due in an hour, over 10,000 domains. */
function fillStore(dataDir: string, recipients: number): number {
  return fillBacklog(dataDir, {
    recipients,
    perMessage: PER_MESSAGE,
    domainOf: (n) => `site${n % 10_000}.test`,
    dueAt: Date.now() + 3_600_000,
    attempts: 1,
    idPrefix: 'BACKLOG',
  });
}

function rssMb(): number {
  return Math.round(process.memoryUsage().rss / 1048576);
}

async function main(): Promise<void> {
  const arg = process.argv.indexOf('--recipients');
  const recipients = arg > 0 ? Number(process.argv[arg + 1]) : 1_000_000;
  const dataDir = mkdtempSync(join(tmpdir(), 'gridpost-scale-'));
  const world = await TestWorld.start();
  await world.addProvider(['fresh.test']);
  try {
    const fillMs = fillStore(dataDir, recipients);
    console.log(`filled ${recipients} deferred recipients in ${(fillMs / 1000).toFixed(1)} s`);
    const before = rssMb();
    const t0 = performance.now();
    const config = validateConfig({
      dataDir,
      smtp: { listen: '127.0.0.1:0' },
      http: { listen: '127.0.0.1:0', apiKeys: [{ name: 'b', key: 'bench-key-0123456789' }] },
      delivery: { port: world.smtpPort },
      dns: { servers: [world.dns.address] },
      log: { level: 'warn' },
    });
    const engine = await Engine.start(config, { log: pino({ level: 'warn' }) });
    const startMs = performance.now() - t0;
    const queued = engine.spool.queueSizes().get('default');
    console.log(`engine started in ${startMs.toFixed(0)} ms; queue default: ${queued} recipients`);
    const held = engine.scheduler.held;
    console.log(`RSS: ${before} MiB before start, ${rssMb()} MiB after; held in memory: ${held}`);
    const t1 = performance.now();
    const stop = { now: false };
    const load = injectLoad(
      {
        port: engine.listening.smtp.port,
        sessions: 4,
        prefix: 'f',
        domain: 'fresh.test',
        from: 'a@sender.test',
      },
      stop,
    );
    while (engine.status.counters.delivered < 1000) await new Promise((r) => setTimeout(r, 20));
    stop.now = true;
    await load;
    const freshMs = performance.now() - t1;
    console.log(
      `1,000 fresh messages accepted and delivered past the backlog in ${freshMs.toFixed(0)} ms`,
    );
    console.log(`RSS at the end: ${rssMb()} MiB; held in memory: ${engine.scheduler.held}`);
    await engine.stop();
  } finally {
    await world.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

void main();
