// What the store keeps across a restart: the policy (and how the start-up config's policy key
// seeds it), the operator's pauses, and the actions of response rules.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { TestWorld, type Receiver } from '../src/testworld/index.js';
import { injectHttp } from './support/shaping.js';
import { startEngine, waitFor, type TestEngine } from './support/harness.js';

describe('the store keeps the traffic policy, pauses and actions across restarts', () => {
  let world: TestWorld;
  let rx: Receiver;
  let dataDir: string;
  const seeded = (weight: number) => ({
    policy: {
      queues: { bulk: { weight, retry: ['1h'], maxAge: '1d' } },
      responseRules: {
        slow: { domain: 'keep.test', code: 421, action: 'suspend', duration: '10m' },
      },
    },
  });

  before(async () => {
    world = await TestWorld.start();
    rx = await world.addProvider(['keep.test'], {
      script: { onRcptTo: () => '421 4.7.0 Slow down' },
    });
  });
  after(async () => {
    await world?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('keeps API edits, pauses and actions while the config key is unchanged', async () => {
    let t: TestEngine = await startEngine(world, seeded(5));
    dataDir = t.dataDir;
    t.engine.policy.put('queues', 'extra', { weight: 7 });
    t.engine.controls.pause('queue', 'bulk');
    await injectHttp(t, [{ to: ['ann@keep.test'] }]);
    const action = await waitFor('the suspension', () => t.engine.controls.actions()[0]);
    await t.stop({ keepData: true });

    t = await startEngine(world, seeded(5), dataDir);
    try {
      const p = t.engine.policy.current;
      assert.equal(p.queue('bulk').weight, 5);
      assert.equal(p.queue('extra').weight, 7, 'the API edit survived the restart');
      assert.deepEqual(
        t.engine.controls.pauses().map((x) => `${x.kind}:${x.name}`),
        ['queue:bulk'],
      );
      const [kept] = t.engine.controls.actions();
      assert.equal(kept?.id, action.id);
      assert.equal(kept?.until, action.until);
      const q = t.engine.controls.queues().find((x) => x.name === 'bulk');
      assert.equal(q?.state, 'paused');
    } finally {
      await t.stop({ keepData: true });
    }
    assert.ok(rx.connections.length >= 1);
  });

  it('applies the config key again once it changed, replacing the edits', async () => {
    const t = await startEngine(world, seeded(9), dataDir);
    try {
      const p = t.engine.policy.current;
      assert.equal(p.queue('bulk').weight, 9);
      assert.equal(p.hasQueue('extra'), false, 'the new seed replaced the edited document');
    } finally {
      await t.stop({ keepData: true });
    }
  });
});
