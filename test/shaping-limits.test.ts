/**
 * Traffic shaping end to end, limits: real engines deliver over real sockets to scripted
 * receivers, and the receivers' own logs show what the shaping rules promise: connections
 * open at once, message and connection rates, a transactional message overtaking a bulk
 * backlog, sites shared by MX rollup, operator pauses, and live policy changes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TestWorld, type Receiver, type ReceiverScript } from '../src/testworld/index.js';
import { startEngine, waitFor, waitForRecord, type TestEngine } from './support/harness.js';
import {
  injectHttp,
  maxConcurrentBySource,
  oneEach,
  ratePerSecond,
  sleep,
} from './support/shaping.js';

/** A receiver that answers each end of DATA after `ms` (a busy server). */
function slowData(ms: number): ReceiverScript {
  return { onMessage: () => ({ delayMs: ms, reply: '250 2.0.0 Ok' }) };
}

type Name = 'conn' | 'rate' | 'connrate' | 'fair' | 'roll' | 'solo' | 'pauseq' | 'pauses' | 'live';

describe('shaping limits', () => {
  let world: TestWorld;
  let t: TestEngine;
  let rxs: Record<Name, Receiver>;

  before(async () => {
    world = await TestWorld.start();
    // The receivers exist before the engine starts: it looks up the domains of its shaping
    // rules at start, and a domain that does not exist yet stays unknown for the negative
    // DNS cache time (30 s).
    rxs = {
      conn: await world.addProvider(['conn.test'], { script: slowData(50) }),
      rate: await world.addProvider(['rate.test']),
      connrate: await world.addProvider(['connrate.test']),
      fair: await world.addProvider(['fair.test'], { retainMessages: 1000 }),
      roll: await world.addProvider(['roll-a.test', 'roll-b.test'], { script: slowData(50) }),
      solo: await world.addProvider(['shared-1.test', 'shared-2.test', 'solo.test'], {
        script: slowData(50),
      }),
      pauseq: await world.addProvider(['pauseq.test']),
      pauses: await world.addProvider(['pauses.test']),
      live: await world.addProvider(['live.test'], { script: slowData(20) }),
    };
    t = await startEngine(world, {
      policy: {
        queues: {
          bulk: { weight: 10, retry: ['1s'], jitter: 0, maxAge: '5m' },
          transactional: { weight: 100, retry: ['1s'], jitter: 0, maxAge: '5m' },
        },
        shaping: {
          conn: { domain: 'conn.test', maxConnections: 3 },
          rate: { domain: 'rate.test', messageRate: '20/s' },
          connrate: {
            domain: 'connrate.test',
            connectionRate: '10/s',
            maxMessagesPerConnection: 1,
          },
          fair: { domain: 'fair.test', messageRate: '20/s', maxConnections: 2 },
          roll: { domain: 'roll-a.test', maxConnections: 2 },
          solo: { domain: 'solo.test', mxRollup: false, maxConnections: 1 },
          live: { domain: 'live.test', maxConnections: 1, messageRate: '5/s' },
        },
      },
    });
  });
  after(async () => {
    await t?.stop();
    await world?.stop();
  });

  it('never opens more than maxConnections to a site, and uses them all', async () => {
    const rx = rxs.conn;
    await injectHttp(t, oneEach('conn.test', 150));
    await rx.waitForMessages(150, 30_000);
    const peak = maxConcurrentBySource(rx.connections);
    console.log(`conn.test: peak connections per source ${JSON.stringify([...peak])}`);
    assert.equal(peak.size, 1, 'one source');
    assert.equal([...peak.values()][0], 3);
    assert.ok(rx.maxConcurrent <= 3, `receiver saw ${rx.maxConcurrent} at once`);
  });

  it('sends at the configured message rate (±10 %)', async () => {
    const rx = rxs.rate;
    await injectHttp(t, oneEach('rate.test', 80));
    await rx.waitForMessages(80, 30_000);
    const got = ratePerSecond(rx.messages.map((m) => m.at));
    console.log(`rate.test: ${got.toFixed(2)} messages/s for 20/s configured`);
    assert.ok(Math.abs(got - 20) <= 2, `measured ${got.toFixed(2)}/s`);
  });

  it('opens connections at the configured connection rate (±10 %)', async () => {
    const rx = rxs.connrate;
    await injectHttp(t, oneEach('connrate.test', 30));
    await rx.waitForMessages(30, 30_000);
    const got = ratePerSecond(rx.connections.map((c) => c.openedAt));
    console.log(`connrate.test: ${got.toFixed(2)} connections/s for 10/s configured`);
    assert.equal(rx.connections.length, 30, 'one message per connection');
    assert.ok(Math.abs(got - 10) <= 1, `measured ${got.toFixed(2)}/s`);
  });

  it('a transactional message overtakes 200,000 bulk recipients to a throttled site', async () => {
    const rx = rxs.fair;
    const started = Date.now();
    const bulk = Array.from({ length: 200 }, (_, m) => ({
      to: Array.from({ length: 1000 }, (_, i) => `b${m}x${i}@fair.test`),
      queue: 'bulk',
    }));
    await injectHttp(t, bulk);
    const injectedMs = Date.now() - started;
    // The bulk backlog is flowing (at 20/s) before the transactional message comes.
    await waitFor('bulk deliveries', () => rx.messageCount >= 2, 20_000);
    const sentAt = Date.now();
    await injectHttp(t, [{ to: ['vip@fair.test'], queue: 'transactional' }]);
    const d = await waitForRecord(t, 'vip@fair.test', 'Delivery', 20_000);
    const latencyMs = Date.parse(d.at) - sentAt;
    console.log(
      `fair.test: 200,000 bulk recipients injected in ${injectedMs} ms; ` +
        `transactional delivered ${latencyMs} ms after injection`,
    );
    assert.ok(latencyMs < 5000, `transactional took ${latencyMs} ms`);
    assert.equal(d.queue, 'transactional');
    // Fairness did not let bulk break the rate either.
    assert.ok(rx.messageCount < 400, `bulk transactions so far: ${rx.messageCount}`);
    // What did not fit in memory for the site waits in the store, and the state says why.
    const q = t.engine.controls.readyQueues().find((s) => s.site === 'mx.fair.test');
    assert.ok(q && q.ready <= 1024 + 1, `ready in memory: ${q?.ready}`);
    assert.match(q?.heldBack?.reason ?? '', /maxReady \(1024\) of queue bulk/);
  });

  it('domains with the same MX hosts share one site and its connection limit', async () => {
    const rx = rxs.roll;
    await injectHttp(t, [...oneEach('roll-a.test', 30), ...oneEach('roll-b.test', 30)]);
    await waitFor('both domains in one ready queue', () => {
      const q = t.engine.controls.readyQueues().find((s) => s.site === 'mx.roll-a.test');
      return q && q.domains.includes('roll-a.test') && q.domains.includes('roll-b.test');
    });
    await rx.waitForMessages(60, 30_000);
    assert.ok(rx.maxConcurrent <= 2, `receiver saw ${rx.maxConcurrent} at once`);
    assert.equal(rx.maxConcurrent, 2, 'the shared limit is used');
    const b = await waitForRecord(t, 'user0@roll-b.test', 'Delivery');
    assert.equal(b.site, 'mx.roll-a.test');
  });

  it('a domain rule with mxRollup: false makes the domain a site of its own', async () => {
    const rx = rxs.solo;
    await injectHttp(t, [...oneEach('solo.test', 10), ...oneEach('shared-1.test', 10)]);
    await waitFor('the solo site in the ready queues', () =>
      t.engine.controls.readyQueues().find((s) => s.site === 'domain:solo.test'),
    );
    await rx.waitForMessages(20, 30_000);
    const solo = await waitForRecord(t, 'user0@solo.test', 'Delivery');
    const shared = await waitForRecord(t, 'user0@shared-1.test', 'Delivery');
    assert.equal(solo.site, 'domain:solo.test');
    assert.equal(shared.site, 'mx.shared-1.test');
    // solo.test (1 connection) never overlapped itself; its own limit does not bind shared-1.
    const soloConns = rx.messages.filter((m) => m.to[0]!.endsWith('@solo.test'));
    assert.equal(soloConns.length, 10);
  });

  it('an operator pause of a queue holds its mail until resumed', async () => {
    const rx = rxs.pauseq;
    t.engine.controls.pause('queue', 'bulk');
    try {
      await injectHttp(t, oneEach('pauseq.test', 5, { queue: 'bulk' }));
      await injectHttp(t, [{ to: ['tx@pauseq.test'], queue: 'transactional' }]);
      await rx.waitForMessages(1, 10_000);
      await sleep(1500);
      assert.deepEqual(
        rx.messages.map((m) => m.to[0]),
        ['tx@pauseq.test'],
        'only the other queue was delivered',
      );
    } finally {
      t.engine.controls.resume('queue', 'bulk');
    }
    await rx.waitForMessages(6, 10_000);
  });

  it('an operator pause of a site holds its mail until resumed', async () => {
    const rx = rxs.pauses;
    await injectHttp(t, oneEach('pauses.test', 1));
    await rx.waitForMessages(1, 10_000);
    t.engine.controls.pause('site', 'mx.pauses.test');
    let resumed = false;
    try {
      await injectHttp(t, oneEach('pauses.test', 5));
      await sleep(1500);
      assert.equal(rx.messages.length, 1, 'nothing more while the site is paused');
      const q = t.engine.controls.readyQueues().find((s) => s.site === 'mx.pauses.test');
      if (q) assert.equal(q.state, 'paused');
      const resumedAt = Date.now();
      resumed = t.engine.controls.resume('site', 'mx.pauses.test');
      await rx.waitForMessages(6, 10_000);
      const lag = rx.messages.at(-1)!.at - resumedAt;
      assert.ok(lag < 3000, `delivered ${lag} ms after the resume`);
    } finally {
      if (!resumed) t.engine.controls.resume('site', 'mx.pauses.test');
    }
  });

  it('a new policy raising the limits applies to a running ready queue', async () => {
    const rx = rxs.live;
    await injectHttp(t, oneEach('live.test', 120));
    await sleep(2000);
    const before = rx.messages.length;
    const changedAt = Date.now();
    t.engine.policy.put('shaping', 'live', {
      domain: 'live.test',
      maxConnections: 4,
      messageRate: '100/s',
    });
    await rx.waitForMessages(120, 20_000);
    const after = rx.messages.filter((m) => m.at >= changedAt).map((m) => m.at);
    const slow = (before * 1000) / 2000;
    const fast = ratePerSecond(after);
    console.log(`live.test: ${slow.toFixed(1)}/s before, ${fast.toFixed(1)}/s after the change`);
    assert.ok(slow <= 6, `before: ${slow}/s at 5/s`);
    assert.ok(fast >= 30, `after: ${fast}/s at 100/s`);
    const peak = maxConcurrentBySource(rx.connections.filter((c) => c.openedAt >= changedAt));
    assert.ok(Math.max(...peak.values()) > 1, 'more connections after the change');
    assert.ok(Math.max(...peak.values()) <= 4);
  });
});
