// GET /api/v1/events: a consumer that stores its cursor gets every record exactly once, in
// order, across pages and across a restart of the engine; filters and bad input.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { rejectAll } from '../src/testworld/behaviours.js';
import { TestWorld } from '../src/testworld/index.js';
import { injectHttp } from './support/shaping.js';
import { api, startEngine, waitFor, type TestEngine } from './support/harness.js';

interface Page {
  events: { seq: number; type: string; domain?: string; messageId?: string }[];
  next: string;
}

/** Reads every event from `cursor` on, `limit` at a time; returns them and the last cursor. */
async function drain(t: TestEngine, cursor: string, limit: number, filter = '') {
  const seen: Page['events'] = [];
  for (;;) {
    const res = await api(t, 'GET', `/api/v1/events?after=${cursor}&limit=${limit}${filter}`);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const page = res.body as Page;
    seen.push(...page.events);
    if (page.next === cursor && page.events.length === 0) return { seen, cursor };
    cursor = page.next;
  }
}

describe('the event cursor', () => {
  let world: TestWorld;
  let t: TestEngine;
  let dataDir: string;

  before(async () => {
    world = await TestWorld.start();
    await world.addProvider(['ok.test']);
    await world.addProvider(['no.test'], { script: rejectAll('550 5.1.1 User unknown') });
    t = await startEngine(world);
    dataDir = t.dataDir;
  });
  after(async () => {
    await t?.stop();
    await world?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const finals = (n: number) => () =>
    t.engine.status.counters.delivered + t.engine.status.counters.bounced >= n;

  it('gives every record once, in order, page by page', async () => {
    await injectHttp(t, [
      ...Array.from({ length: 20 }, (_, i) => ({ to: [`u${i}@ok.test`] })),
      ...Array.from({ length: 5 }, (_, i) => ({ to: [`u${i}@no.test`] })),
    ]);
    await waitFor('25 outcomes', finals(25));
    const { seen } = await drain(t, '0', 7);
    const seqs = seen.map((e) => e.seq);
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
      'in order',
    );
    assert.equal(new Set(seqs).size, seqs.length, 'each once');
    const count = (type: string) => seen.filter((e) => e.type === type).length;
    assert.equal(count('Reception'), 25);
    assert.equal(count('Delivery'), 20);
    assert.equal(count('Bounce'), 5);
  });

  it('filters by type and domain; the cursor still moves past what it skipped', async () => {
    const bounces = await drain(t, '0', 100, '&type=Bounce');
    assert.equal(bounces.seen.length, 5);
    assert.ok(bounces.seen.every((e) => e.type === 'Bounce' && e.domain === 'no.test'));
    const ok = await drain(t, '0', 3, '&domain=ok.test&type=Delivery');
    assert.equal(ok.seen.length, 20);
    const all = await drain(t, '0', 1000);
    assert.equal(ok.cursor, all.cursor, 'a filtered consumer ends at the same cursor');
  });

  it('resumes after a restart from the stored cursor with only what is new', async () => {
    const { cursor } = await drain(t, '0', 1000);
    await t.stop({ keepData: true });
    t = await startEngine(world, {}, dataDir);
    await injectHttp(t, [{ to: ['late@ok.test'] }]);
    await waitFor('the late delivery', finals(1));
    const { seen } = await drain(t, cursor, 10);
    assert.deepEqual(
      seen.map((e) => e.type),
      ['Reception', 'Delivery'],
    );
    assert.ok(seen.every((e) => e.seq > Number(cursor)));
  });

  it('counts outcomes per domain, category and hour', async () => {
    const res = await api(t, 'GET', '/api/v1/stats?by=domain,category');
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const row = (domain: string, category: string) =>
      res.body.rows.find(
        (r: { domain: string; category: string }) => r.domain === domain && r.category === category,
      );
    assert.equal(row('ok.test', '')?.delivered, 21);
    assert.equal(row('no.test', 'bad-mailbox')?.bounced, 5);
    const hourly = await api(t, 'GET', '/api/v1/stats?by=hour&domain=no.test');
    const total = hourly.body.rows.reduce((n: number, r: { bounced: number }) => n + r.bounced, 0);
    assert.equal(total, 5);
    assert.match(hourly.body.rows[0].hour, /T\d\d:00:00\.000Z$/);
    const bad = await api(t, 'GET', '/api/v1/stats?by=color');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.path, 'by');
  });

  it('refuses a bad cursor or type, naming it', async () => {
    const badType = await api(t, 'GET', '/api/v1/events?type=Bounced');
    assert.equal(badType.status, 400);
    assert.equal(badType.body.error.path, 'type');
    assert.match(badType.body.error.message, /no record type "Bounced"/);
    const badCursor = await api(t, 'GET', '/api/v1/events?after=-1');
    assert.equal(badCursor.status, 400);
    assert.equal(badCursor.body.error.code, 'E_VALIDATION');
  });
});
