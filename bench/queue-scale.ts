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
import { openStore } from '../src/spool/store.js';
import { TestWorld } from '../src/testworld/index.js';
import { injectLoad } from '../test/support/load.js';

const PER_MESSAGE = 10;

/** Writes the backlog straight into a new store, in large transactions. */
function fillStore(dataDir: string, recipients: number): number {
  const started = performance.now();
  const db = openStore(dataDir);
  const body = Buffer.alloc(2048, 'x');
  const now = Date.now();
  const insertMessage = db.prepare(
    'INSERT INTO messages (id, sender, queue, received_at, size, body) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const insertRecipient = db.prepare(
    `INSERT INTO recipients (id, message_id, address, domain, queue, attempts, next_attempt_at,
      expires_at, leased) VALUES (?, ?, ?, ?, 'default', 1, ?, ?, 0)`,
  );
  const batch = db.transaction((from: number, to: number) => {
    for (let m = from; m < to; m++) {
      const id = `BACKLOG${m.toString().padStart(9, '0')}`;
      insertMessage.run(id, 'bulk@sender.test', 'default', now, body.length, body);
      for (let n = 1; n <= PER_MESSAGE; n++) {
        const site = (m * PER_MESSAGE + n) % 10_000;
        const address = `u${m}-${n}@site${site}.test`;
        insertRecipient.run(
          `${id}.${n}`,
          id,
          address,
          `site${site}.test`,
          now + 3_600_000,
          now + 86_400_000,
        );
      }
    }
  });
  const messages = Math.ceil(recipients / PER_MESSAGE);
  for (let m = 0; m < messages; m += 10_000) batch(m, Math.min(messages, m + 10_000));
  db.close();
  return performance.now() - started;
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
