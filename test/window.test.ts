/**
 * Memory does not grow with the queue: at most `spool.window` recipients are held in memory;
 * the rest wait in the store and are taken as room frees up, deferred ones included.
 */
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { TestWorld, compose, tempFailFirst, accept } from '../src/testworld/index.js';
import { api, simpleMessage, startEngine, waitFor, type TestEngine } from './support/harness.js';

let world: TestWorld;
let t: TestEngine;

before(async () => {
  world = await TestWorld.start();
  t = await startEngine(world, {
    spool: { window: 100 },
    policy: {
      queues: { default: { retry: ['0.5s'], jitter: 0, maxAge: '1m' } },
      shaping: { test: { maxConnections: 2 } },
    },
  });
});
after(async () => {
  await t?.stop();
  await world?.stop();
});

it(
  'holds at most the window in memory and still delivers everything',
  { timeout: 60_000 },
  async () => {
    const rx = await world.addProvider(['window.test'], {
      script: compose(tempFailFirst(300), accept()),
    });
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, t.engine.scheduler.held)), 2);
    // Batches of 250 through the API: each batch is more than the window, so it goes to the store.
    for (let b = 0; b < 4; b++) {
      const messages = Array.from({ length: 250 }, (_, i) => {
        const to = `w${b * 250 + i}@window.test`;
        return {
          envelope: { from: 'a@sender.test', to: [to] },
          raw: simpleMessage('a@sender.test', to),
        };
      });
      const res = await api(t, 'POST', '/api/v1/messages', { messages });
      assert.equal(res.status, 202);
    }
    await waitFor('1000 deliveries', () => new Set(rx.recipients()).size === 1000, 50_000);
    clearInterval(sampler);
    assert.ok(peak <= 100, `peak held in memory ${peak} > window 100`);
    assert.ok(peak >= 50, `the window was used (${peak})`);
    assert.ok(t.engine.status.counters.deferred >= 300, 'the first 300 transactions were deferred');
    // The receiver has a message a moment before the engine has committed its Delivery.
    await waitFor('an empty queue', () => t.engine.spool.queueSizes().get('default') === 0);
  },
);
