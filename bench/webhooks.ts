/**
 * How fast the webhook outbox drains (`npm run bench:webhooks`): a store holding N records
 * (default 300,000: 100,000 messages at three events each, Reception, TransientFailure and
 * Delivery, as real records), one endpoint on loopback that answers 204, batches of 1,000.
 * Prints events per second, to compare with three times the engine's delivery rate.
 *
 *   node dist/bench/webhooks.js [--records 300000] [--batch 1000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { Webhooks } from '../src/feedback/webhooks.js';
import { Journal } from '../src/records/journal.js';
import { Recorder } from '../src/records/recorder.js';
import type { GridpostRecord } from '../src/records/types.js';
import { openStore } from '../src/spool/store.js';

function record(i: number): GridpostRecord {
  const at = new Date().toISOString();
  const messageId = `BENCH${Math.floor(i / 3)}`;
  const base = { at, messageId, recipientId: `${messageId}.1`, recipient: `u${i}@sink.bench` };
  const attempt = {
    ...base,
    sender: 'a@sender.bench',
    domain: 'sink.bench',
    queue: 'default',
    source: 'default',
    site: 'mx.sink.bench',
    mxHost: 'mx.sink.bench',
    mxIp: '127.0.2.2',
    attempt: 1,
    timings: { sinceReceptionMs: 12, queuedMs: 1, transactionMs: 4 },
  };
  if (i % 3 === 0) {
    return {
      type: 'Reception',
      at,
      messageId,
      queue: 'default',
      sender: 'a@sender.bench',
      size: 5120,
      recipients: [{ id: base.recipientId, address: base.recipient }],
      via: 'http',
      client: { apiKey: 'bench' },
    };
  }
  if (i % 3 === 1) {
    const reply = { code: 451, enhanced: '4.7.1', text: 'Greylisted, try again later' };
    return { type: 'TransientFailure', ...attempt, reply, nextAttemptAt: at };
  }
  const reply = { code: 250, enhanced: '2.0.0', text: 'Ok: queued as X' };
  return { type: 'Delivery', ...attempt, attempt: 2, reply };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      records: { type: 'string', default: '300000' },
      batch: { type: 'string', default: '1000' },
    },
  });
  const n = Number(values.records);
  const dir = mkdtempSync(join(tmpdir(), 'gridpost-webhooks-'));
  const db = openStore(dir);
  const journal = new Journal(join(dir, 'records'), 1 << 30, Date.now, () => undefined);
  const fill = new Recorder(db, journal);
  db.transaction(() => {
    for (let i = 0; i < n; i++) fill.insert(record(i));
  })();
  let received = 0;
  let done: () => void = () => {};
  const finished = new Promise<void>((r) => (done = r));
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received += (JSON.parse(body) as { events: unknown[] }).events.length;
      res.writeHead(204).end();
      if (received >= n) done();
    });
  }).listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const recorder = new Recorder(db, journal);
  const hooks = new Webhooks(db, recorder, pino({ level: 'warn' }));
  const started = performance.now();
  hooks.put({ name: 'bench', url, types: [], batchSize: Number(values.batch) }, 0);
  await finished;
  const s = (performance.now() - started) / 1000;
  hooks.stop();
  server.close();
  db.close();
  rmSync(dir, { recursive: true, force: true });
  const perSecond = Math.round(n / s);
  console.log(`${n} records to one endpoint in ${s.toFixed(2)} s: ${perSecond} events/s`);
  console.log(JSON.stringify({ records: n, batch: Number(values.batch), seconds: s, perSecond }));
}

void main();
