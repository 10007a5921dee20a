/**
 * The traffic controls over HTTP against a real engine: queues and their pauses, sites and
 * sources paused by name, ready queues, response-rule actions listed and lifted, and retry,
 * purge and move of recipients that wait in the store behind a receiver answering 451.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TestWorld, rejectAll } from '../src/testworld/index.js';
import { api, startEngine, waitFor, type TestEngine } from './support/harness.js';

const HOLD = { retry: ['1h'], jitter: 0, maxAge: '1d' };

describe('traffic API', () => {
  let world: TestWorld;
  let t: TestEngine;

  before(async () => {
    world = await TestWorld.start();
    await world.addProvider(['wait.test'], { script: rejectAll('451 4.3.0 later') });
    await world.addProvider(['busy.test'], { script: rejectAll('451 4.7.0 slow down please') });
    t = await startEngine(world, {
      policy: {
        queues: { default: HOLD, bulk: { ...HOLD, weight: 5 } },
        responseRules: {
          busy: { code: '4xx', text: 'slow down please', action: 'backoff', duration: '10m' },
        },
      },
    });
  });
  after(async () => {
    await t?.stop();
    await world?.stop();
  });

  it('lists queues, pauses and resumes one, and refuses an unknown one', async () => {
    const list = await api(t, 'GET', '/api/v1/queues');
    assert.equal(list.status, 200);
    assert.deepEqual(list.body.queues.map((q: { name: string }) => q.name).sort(), [
      'bulk',
      'default',
    ]);
    const paused = await api(t, 'POST', '/api/v1/queues/bulk/pause');
    assert.equal(paused.status, 200);
    assert.equal(paused.body.kind, 'queue');
    assert.equal(paused.body.name, 'bulk');
    const bulk = (await api(t, 'GET', '/api/v1/queues')).body.queues.find(
      (q: { name: string }) => q.name === 'bulk',
    );
    assert.equal(bulk.state, 'paused');
    assert.match(bulk.reason, /paused by an operator since /);
    const pauses = (await api(t, 'GET', '/api/v1/pauses')).body.pauses;
    assert.deepEqual(
      pauses.map((p: { kind: string; name: string }) => `${p.kind}:${p.name}`),
      ['queue:bulk'],
    );
    const resumed = await api(t, 'POST', '/api/v1/queues/bulk/resume');
    assert.deepEqual(resumed.body, { kind: 'queue', name: 'bulk', resumed: true });
    const twice = await api(t, 'POST', '/api/v1/queues/bulk/resume');
    assert.equal(twice.body.resumed, false);
    for (const verb of ['pause', 'resume']) {
      const bad = await api(t, 'POST', `/api/v1/queues/nope/${verb}`);
      assert.equal(bad.status, 400, verb);
      assert.equal(bad.body.error.code, 'E_UNKNOWN_QUEUE');
      assert.equal(bad.body.error.path, 'name');
    }
  });

  it('pauses a site by its URL-encoded name, and a source', async () => {
    const site = 'mx1.a.test,mx2.a.test';
    const path = `/api/v1/sites/${encodeURIComponent(site)}`;
    const paused = await api(t, 'POST', `${path}/pause`);
    assert.equal(paused.status, 200);
    assert.equal(paused.body.name, site);
    const src = await api(t, 'POST', '/api/v1/sources/default/pause');
    assert.equal(src.status, 200);
    const pauses = (await api(t, 'GET', '/api/v1/pauses')).body.pauses;
    const names = pauses.map((p: { kind: string; name: string }) => `${p.kind}:${p.name}`);
    assert.deepEqual(names.sort(), [`site:${site}`, 'source:default']);
    assert.equal((await api(t, 'POST', `${path}/resume`)).body.resumed, true);
    assert.equal((await api(t, 'POST', '/api/v1/sources/default/resume')).body.resumed, true);
    assert.deepEqual((await api(t, 'GET', '/api/v1/pauses')).body.pauses, []);
    const unknown = await api(t, 'POST', '/api/v1/sources/nope/pause');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, 'E_NOT_FOUND');
    assert.equal(unknown.body.error.path, 'name');
  });

  it('validates the limit of ready queues', async () => {
    for (const limit of ['abc', '0', '-1']) {
      const bad = await api(t, 'GET', `/api/v1/ready-queues?limit=${limit}`);
      assert.equal(bad.status, 400, limit);
      assert.equal(bad.body.error.code, 'E_VALIDATION');
      assert.equal(bad.body.error.path, 'limit');
    }
    const ok = await api(t, 'GET', '/api/v1/ready-queues?limit=1');
    assert.equal(ok.status, 200);
    assert.ok(Array.isArray(ok.body.readyQueues) && ok.body.readyQueues.length <= 1);
  });

  it('lists the action a response rule started, and lifts it', async () => {
    await inject(t, ['x@busy.test']);
    const actions = await waitFor('the back-off action', async () => {
      const { body } = await api(t, 'GET', '/api/v1/actions');
      return body.actions.length > 0 ? body.actions : undefined;
    });
    assert.equal(actions.length, 1);
    const a = actions[0];
    assert.equal(a.kind, 'backoff');
    assert.equal(a.rule, 'busy');
    assert.equal(a.site, 'mx.busy.test');
    assert.match(a.cause.reply.text, /slow down please/);
    const lifted = await api(t, 'DELETE', `/api/v1/actions/${encodeURIComponent(a.id)}`);
    assert.equal(lifted.status, 200);
    assert.equal(lifted.body.id, a.id);
    assert.deepEqual((await api(t, 'GET', '/api/v1/actions')).body.actions, []);
    const again = await api(t, 'DELETE', `/api/v1/actions/${encodeURIComponent(a.id)}`);
    assert.equal(again.status, 404);
    assert.equal(again.body.error.code, 'E_NOT_FOUND');
    await api(t, 'POST', '/api/v1/recipients/purge', { domain: 'busy.test' });
  });

  describe('recipients waiting in the store', () => {
    let m1 = '';
    let m2 = '';
    let m3 = '';

    before(async () => {
      m1 = await inject(t, ['a1@wait.test', 'a2@wait.test']);
      m2 = await inject(t, ['b@wait.test']);
      m3 = await inject(t, ['c@Wait.Test']);
      await waitFor('four recipients deferred and back in the store', async () => {
        const q = await queue(t, 'default');
        const deferred = t.engine.recorder
          .forMessage(m1)
          .concat(t.engine.recorder.forMessage(m2), t.engine.recorder.forMessage(m3))
          .filter((r) => r.type === 'TransientFailure');
        return q.recipients === 4 && q.inMemory === 0 && deferred.length === 4;
      });
    });

    it('refuses to purge or move an empty selection', async () => {
      for (const body of [{}, { all: false }]) {
        const res = await api(t, 'POST', '/api/v1/recipients/purge', body);
        assert.equal(res.status, 400);
        assert.equal(res.body.error.code, 'E_VALIDATION');
        assert.equal(res.body.error.path, 'body');
        assert.match(res.body.error.message, /^select something/);
      }
      const move = await api(t, 'POST', '/api/v1/recipients/move', { to: { queue: 'bulk' } });
      assert.equal(move.body.error.code, 'E_VALIDATION');
      assert.match(move.body.error.message, /^select something/);
      assert.equal((await queue(t, 'default')).recipients, 4, 'nothing purged or moved');
    });

    it('refuses a bad selection or destination, naming the field', async () => {
      const extra = await api(t, 'POST', '/api/v1/recipients/purge', { quue: 'default' });
      assert.equal(extra.body.error.code, 'E_VALIDATION');
      assert.equal(extra.body.error.path, 'quue');
      const noTo = await api(t, 'POST', '/api/v1/recipients/move', { messageId: m2 });
      assert.equal(noTo.body.error.code, 'E_VALIDATION');
      assert.equal(noTo.body.error.path, 'to');
      const emptyTo = await api(t, 'POST', '/api/v1/recipients/move', { messageId: m2, to: {} });
      assert.equal(emptyTo.body.error.path, 'to');
      const badQueue = { messageId: m2, to: { queue: 'nope' } };
      const unknown = await api(t, 'POST', '/api/v1/recipients/move', badQueue);
      assert.equal(unknown.body.error.code, 'E_UNKNOWN_QUEUE');
      assert.equal(unknown.body.error.path, 'to.queue');
      const badPool = { messageId: m2, to: { pool: 'nope' } };
      const pool = await api(t, 'POST', '/api/v1/recipients/move', badPool);
      assert.equal(pool.body.error.code, 'E_UNKNOWN_POOL');
      const nothing = await api(t, 'POST', '/api/v1/recipients/purge', { domain: 'none.test' });
      assert.deepEqual(nothing.body, { count: 0 });
    });

    it('moves a message to another queue, with an AdminAction record', async () => {
      const res = await api(t, 'POST', '/api/v1/recipients/move', {
        messageId: m2,
        to: { queue: 'bulk' },
      });
      assert.deepEqual(res.body, { count: 1 });
      assert.equal((await queue(t, 'bulk')).recipients, 1);
      assert.equal((await queue(t, 'default')).recipients, 3);
      const msg = await api(t, 'GET', `/api/v1/messages/${m2}`);
      const admin = msg.body.records.filter((r: { type: string }) => r.type === 'AdminAction');
      assert.equal(admin.length, 1);
      assert.equal(admin[0].action, 'move');
      assert.deepEqual(admin[0].to, { queue: 'bulk' });
      assert.equal(admin[0].recipientId, `${m2}.1`);
      assert.equal(msg.body.waiting.length, 1, 'still waiting, in its new queue');
    });

    it('makes a recipient due now on retry (matching the domain in any case)', async () => {
      const res = await api(t, 'POST', '/api/v1/recipients/retry', {
        domain: 'WAIT.test',
        messageId: m3,
      });
      assert.deepEqual(res.body, { count: 1 });
      await waitFor('a second attempt', () =>
        t.engine.recorder
          .forMessage(m3)
          .some((r) => r.type === 'TransientFailure' && (r as { attempt: number }).attempt === 2),
      );
    });

    it('purges a message: one AdminAction record per recipient, nothing left waiting', async () => {
      const res = await api(t, 'POST', '/api/v1/recipients/purge', { messageId: m1 });
      assert.deepEqual(res.body, { count: 2 });
      const trace = await api(t, 'GET', `/api/v1/trace?q=${m1}`);
      const admin = trace.body.records.filter((r: { type: string }) => r.type === 'AdminAction');
      assert.deepEqual(admin.map((r: { recipientId: string }) => r.recipientId).sort(), [
        `${m1}.1`,
        `${m1}.2`,
      ]);
      assert.ok(admin.every((r: { action: string }) => r.action === 'purge'));
      assert.deepEqual(trace.body.waiting, []);
    });

    it('purges everything only when asked with all: true', async () => {
      await waitFor('m3 back in the store', async () => (await queue(t, 'default')).inMemory === 0);
      const res = await api(t, 'POST', '/api/v1/recipients/purge', { all: true });
      assert.deepEqual(res.body, { count: 2 });
      assert.equal((await queue(t, 'default')).recipients, 0);
      assert.equal((await queue(t, 'bulk')).recipients, 0);
    });
  });
});

/** Injects one message over HTTP; returns its id. */
async function inject(t: TestEngine, to: string[]): Promise<string> {
  const res = await api(t, 'POST', '/api/v1/messages', { from: 'a@sender.test', to, text: 'x' });
  assert.equal(res.status, 202, JSON.stringify(res.body));
  return res.body.messages[0].id;
}

async function queue(t: TestEngine, name: string) {
  const { body } = await api(t, 'GET', '/api/v1/queues');
  return body.queues.find((q: { name: string }) => q.name === name);
}
