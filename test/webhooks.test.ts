// Webhooks that lose nothing: a receiver that fails for a while and then recovers gets every
// record exactly once per id, signed, in order, also across a restart of the engine; the
// endpoint's state shows the failures; the secret is answered once and never again.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { verifySignature } from '../src/feedback/webhooks.js';
import { TestWorld } from '../src/testworld/index.js';
import { injectHttp } from './support/shaping.js';
import { api, startEngine, waitFor, type TestEngine } from './support/harness.js';

/** A webhook receiver that answers 500 to its first `failFirst` posts. */
class Hook {
  readonly seqs: number[] = [];
  posts = 0;
  badSignatures = 0;
  secret = '';
  private server!: Server;

  constructor(private failFirst: number) {}

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        this.posts++;
        if (this.posts <= this.failFirst) return void res.writeHead(500).end();
        const sig = String(req.headers['x-gridpost-signature'] ?? '');
        if (verifySignature(sig, body, this.secret) === null) this.badSignatures++;
        const doc = JSON.parse(body) as { events: { seq: number }[] };
        this.seqs.push(...doc.events.map((e) => e.seq));
        res.writeHead(204).end();
      });
    });
    this.server.listen(0, '127.0.0.1');
    await new Promise((r) => this.server.once('listening', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }

  stop(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}

describe('webhooks', () => {
  let world: TestWorld;
  let t: TestEngine;
  let dataDir: string;
  const hook = new Hook(3);

  before(async () => {
    world = await TestWorld.start();
    await world.addProvider(['hook.test']);
    t = await startEngine(world);
    dataDir = t.dataDir;
  });
  after(async () => {
    await t?.stop();
    await hook.stop();
    await world?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const allSeqs = async () => {
    const res = await api(t, 'GET', '/api/v1/events?after=0&limit=1000');
    return (res.body.events as { seq: number }[]).map((e) => e.seq);
  };
  const state = async () => (await api(t, 'GET', '/api/v1/webhooks')).body.webhooks[0];

  it('gets every record once, in order, after failing for a while', async () => {
    await injectHttp(
      t,
      Array.from({ length: 15 }, (_, i) => ({ to: [`u${i}@hook.test`] })),
    );
    const url = await hook.start();
    const put = await api(t, 'PUT', '/api/v1/webhooks/crm', { url, batchSize: 7, from: 'start' });
    assert.equal(put.status, 200);
    hook.secret = put.body.secret;
    assert.ok(hook.secret.length >= 20);
    const failing = await waitFor('a failure shown', async () => {
      const s = await state();
      return s.failures > 0 ? s : null;
    });
    assert.equal(failing.state, 'retrying');
    assert.equal(failing.lastError, 'HTTP 500');
    await waitFor('the deliveries', () => t.engine.status.counters.delivered >= 15);
    await waitFor('every record', async () => (await state()).lag === 0, 20_000);
    const want = await allSeqs();
    assert.deepEqual(hook.seqs, want, 'each record once, in order');
    assert.equal(hook.badSignatures, 0);
    assert.equal((await state()).secret, undefined, 'the secret is not shown again');
  });

  it('goes on from its cursor after a restart', async () => {
    await t.stop({ keepData: true });
    t = await startEngine(world, {}, dataDir);
    await injectHttp(t, [{ to: ['late@hook.test'] }]);
    await waitFor('the late delivery', () => t.engine.status.counters.delivered >= 1);
    const want = await allSeqs();
    await waitFor('the new records', () => hook.seqs.length === want.length, 20_000);
    assert.deepEqual(hook.seqs, want);
  });
});
