/**
 * Traffic shaping end to end, egress and response rules: sources and pools as the receiver
 * sees them (remote address, HELO), rotation on retry, and the actions of response rules
 * (back off, suspend, disable a source, bounce) with their state, expiry and operator lift.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TestWorld, type Receiver, type ReceiverScript } from '../src/testworld/index.js';
import {
  recordsOf,
  startEngine,
  waitFor,
  waitForRecord,
  type TestEngine,
} from './support/harness.js';
import {
  injectHttp,
  maxConcurrentBySource,
  oneEach,
  ratePerSecond,
  sleep,
} from './support/shaping.js';

const A = '127.0.0.10';
const B = '127.0.0.11';
const C = '127.0.0.12';

/** Replies `reply` at RCPT to the first `n` recipients, then accepts. */
function firstRcpts(n: number, reply: string): ReceiverScript {
  let seen = 0;
  return { onRcptTo: () => (seen++ < n ? reply : undefined) };
}

/** The ready queue of a site (first source found), if it exists now. */
function readyQueue(t: TestEngine, site: string, source?: string) {
  return t.engine.controls
    .readyQueues()
    .find((q) => q.site === site && (!source || q.source === source));
}

describe('egress sources, pools and response rules', () => {
  let world: TestWorld;
  let t: TestEngine;
  const rx: Record<string, Receiver> = {};

  before(async () => {
    world = await TestWorld.start();
    // Receivers first: the engine looks up its rule domains at start.
    rx.pool = await world.addProvider(['pool.test']);
    rx.qpool = await world.addProvider(['qpool.test']);
    rx.rotate = await world.addProvider(['rotate.test'], {
      script: firstRcpts(1, '451 4.3.0 Try again later'),
    });
    rx.backoff = await world.addProvider(['backoff.test'], {
      script: firstRcpts(1, '421 4.7.28 Unusual rate of unsolicited mail from your IP'),
    });
    rx.suspend = await world.addProvider(['suspend.test'], {
      script: firstRcpts(1, '421 4.7.0 [TSS04] Messages temporarily deferred'),
    });
    rx.disable = await world.addProvider(['disable.test'], {
      script: {
        onRcptTo: (c) =>
          c.remoteAddress === A ? '550 5.7.606 Access denied, banned sending IP' : undefined,
      },
    });
    rx.bounce = await world.addProvider(['bounce.test'], {
      script: { onRcptTo: () => '450 4.1.1 <x>: Recipient address rejected: user unknown' },
    });
    rx.threshold = await world.addProvider(['threshold.test'], {
      script: firstRcpts(3, '451 4.7.1 Slow down, too fast'),
    });
    rx.pausesrc = await world.addProvider(['pausesrc.test']);
    rx.lift = await world.addProvider(['lift.test'], {
      script: firstRcpts(1, '421 4.7.0 [TSS04] Messages temporarily deferred'),
    });
    t = await startEngine(world, {
      policy: {
        sources: {
          a: { address: A, helo: 'a.engine.test' },
          b: { address: B, helo: 'b.engine.test' },
          c: { address: C, helo: 'c.engine.test' },
        },
        pools: { ab: { sources: { a: 1, b: 1 } }, conly: { sources: { c: 1 } } },
        queues: {
          default: { pool: 'ab' },
          cq: { pool: 'conly', retry: ['1s'], jitter: 0, maxAge: '30s' },
        },
        shaping: {
          // One session, so that the recipients after the first meet the suspension.
          suspend: { domain: 'suspend.test', maxConnections: 1 },
          backoff: {
            domain: 'backoff.test',
            maxConnections: 4,
            messageRate: '50/s',
            backoff: { maxConnections: 1, messageRate: '2/s' },
          },
        },
        responseRules: {
          'rate-backoff': { enhanced: '4.7.28', action: 'backoff', duration: '2s' },
          'tss04-suspend': { code: 421, text: '\\[TSS04\\]', action: 'suspend', duration: '1.5s' },
          'banned-ip': { text: 'banned sending IP', action: 'disable-source', duration: '1m' },
          'unknown-bounce': { enhanced: '4.1.1', code: '4xx', action: 'bounce' },
          'slow-down-3': {
            domain: 'threshold.test',
            text: 'slow down',
            action: 'backoff',
            duration: '1m',
            trigger: { count: 3, within: '1m' },
          },
        },
      },
    });
  });
  after(async () => {
    await t?.stop();
    await world?.stop();
  });

  it('a pool of two sources 1:1 sends from both, each with its HELO name', async () => {
    await injectHttp(t, oneEach('pool.test', 40));
    await rx.pool!.waitForMessages(40, 10_000);
    const bySource = new Map<string, Set<string | undefined>>();
    for (const m of rx.pool!.messages) {
      const helos = bySource.get(m.remoteAddress) ?? new Set();
      helos.add(m.helo);
      bySource.set(m.remoteAddress, helos);
    }
    assert.deepEqual([...bySource.keys()].sort(), [A, B]);
    assert.deepEqual([...bySource.get(A)!], ['a.engine.test']);
    assert.deepEqual([...bySource.get(B)!], ['b.engine.test']);
    const fromA = rx.pool!.messages.filter((m) => m.remoteAddress === A).length;
    assert.ok(fromA >= 8 && fromA <= 32, `${fromA} of 40 from a`);
  });

  it("a queue's pool and an injection's pool choose the sources", async () => {
    await injectHttp(t, oneEach('qpool.test', 5, { queue: 'cq' }));
    await injectHttp(t, oneEach('qpool.test', 5, { pool: 'conly', subject: 'by call' }));
    await rx.qpool!.waitForMessages(10, 10_000);
    const addresses = new Set(rx.qpool!.messages.map((m) => m.remoteAddress));
    assert.deepEqual([...addresses], [C]);
    assert.ok(rx.qpool!.messages.every((m) => m.helo === 'c.engine.test'));
  });

  it('rotateOnRetry sends the retry of a deferred recipient from the other source', async () => {
    await injectHttp(t, [{ to: ['once@rotate.test'] }]);
    const d = await waitForRecord(t, 'once@rotate.test', 'Delivery', 10_000);
    const tf = recordsOf(t, 'once@rotate.test').find((r) => r.type === 'TransientFailure');
    assert.ok(tf && tf.type === 'TransientFailure');
    assert.notEqual(d.source, tf.source, 'another source on the retry');
    const conns = rx.rotate!.connections.map((c) => c.remoteAddress);
    assert.deepEqual(new Set(conns), new Set([A, B]));
    assert.equal(rx.rotate!.messages[0]!.remoteAddress, d.localIp);
  });

  it('a back-off rule lowers the limits for its duration, then the state clears', async () => {
    const site = 'mx.backoff.test';
    await injectHttp(t, oneEach('backoff.test', 30, { pool: 'conly' }));
    const q = await waitFor('backoff state', () => {
      const s = readyQueue(t, site);
      return s?.state === 'backoff' ? s : null;
    });
    assert.equal(q.action?.rule, 'rate-backoff');
    assert.equal(q.action?.cause.reply.enhanced, '4.7.28');
    assert.match(q.reason ?? '', /4\.7\.28 Unusual rate/);
    assert.equal(q.limits.maxConnections, 1);
    assert.equal(q.limits.messageRate, '2/s');
    const until = Date.parse(q.until!);
    assert.ok(until - Date.now() <= 2000 && until - Date.now() > 0, q.until);
    // While it lasts: one connection at 2/s (the first instants may hold a message or two).
    await sleep(until - Date.now());
    const during = rx.backoff!.messages.filter((m) => m.at < until).map((m) => m.at);
    assert.ok(during.length <= 7, `${during.length} messages during the 2 s back-off`);
    const conns = rx.backoff!.connections.filter((c) => c.openedAt > until - 1900);
    assert.ok(Math.max(0, ...maxConcurrentBySource(conns).values()) <= 1);
    // Afterwards the site's own limits (50/s) apply again.
    await rx.backoff!.waitForMessages(30, 10_000);
    const afterwards = rx.backoff!.messages.filter((m) => m.at >= until).map((m) => m.at);
    if (afterwards.length >= 5) assert.ok(ratePerSecond(afterwards) > 5);
    assert.equal(t.engine.controls.actions().filter((a) => a.site === site).length, 0);
    const now = readyQueue(t, site);
    assert.ok(!now || now.state !== 'backoff', `state ${now?.state}`);
  });

  it('a suspend rule stops connections from that source until it ends', async () => {
    const site = 'mx.suspend.test';
    await injectHttp(t, oneEach('suspend.test', 5, { pool: 'conly' }));
    const action = await waitFor('suspension', () =>
      t.engine.controls.actions().find((a) => a.site === site && a.kind === 'suspend'),
    );
    const until = Date.parse(action.until);
    const first = rx.suspend!.connections[0]!;
    await rx.suspend!.waitForMessages(5, 15_000);
    // Sessions opened before the first reply came are not the suspension's to stop.
    const since = Date.parse(action.since);
    const during = rx.suspend!.connections.filter(
      (c) => c.id !== first.id && c.openedAt > since && c.openedAt < until,
    );
    assert.equal(during.length, 0, 'no connection during the suspension');
    const deferred = recordsOf(t, 'user2@suspend.test').find((r) => r.type === 'TransientFailure');
    assert.ok(deferred && deferred.type === 'TransientFailure');
    assert.equal(deferred.stage, 'suspended');
    assert.equal(deferred.attempt, 1, 'not counted as an attempt');
    assert.match(deferred.reply.text, /TSS04/);
    const d = await waitForRecord(t, 'user2@suspend.test', 'Delivery');
    assert.ok(Date.parse(d.at) >= until, 'delivered after the suspension');
  });

  it("a suspension's own deferrals do not extend it", async () => {
    const site = 'mx.lift.test';
    await injectHttp(t, oneEach('lift.test', 1, { pool: 'conly' }));
    const action = await waitFor('suspension', () =>
      t.engine.controls.actions().find((a) => a.site === site),
    );
    await injectHttp(t, oneEach('lift.test', 10, { pool: 'conly', subject: 'more' }));
    await waitFor('deferrals while suspended', () =>
      recordsOf(t, 'user5@lift.test').some((r) => r.type === 'TransientFailure'),
    );
    const still = t.engine.controls.actions().find((a) => a.id === action.id);
    assert.equal(still?.until, action.until, 'until unchanged');
    assert.equal(still?.hits, 1);
  });

  it('an operator lifts an action and the state clears at once', async () => {
    const site = 'mx.lift.test';
    const action = t.engine.controls.actions().find((a) => a.site === site);
    if (action) {
      t.engine.controls.lift(action.id);
      assert.equal(t.engine.controls.actions().filter((a) => a.site === site).length, 0);
      const q = readyQueue(t, site);
      assert.ok(!q || q.state !== 'suspended', `state ${q?.state}`);
    }
    await rx.lift!.waitForMessages(11, 10_000);
  });

  it('a disable-source rule moves later mail to the other source of the pool', async () => {
    await injectHttp(t, oneEach('disable.test', 30));
    await rx.disable!.waitForMessages(30, 15_000);
    const disabled = t.engine.controls
      .actions()
      .find((a) => a.kind === 'disable-source' && a.site === 'mx.disable.test');
    assert.equal(disabled?.source, 'a');
    assert.equal(disabled?.rule, 'banned-ip');
    assert.ok(rx.disable!.messages.every((m) => m.remoteAddress === B));
    const fromA = rx.disable!.connections.filter((c) => c.remoteAddress === A);
    // The sessions opened before the first refusal came back are not the rule's to stop.
    assert.ok(fromA.length >= 1, `${fromA.length} connections from a`);
    const openedAfter = fromA.filter((c) => c.openedAt > Date.parse(disabled!.since) + 50);
    assert.equal(openedAfter.length, 0, 'no connection from a once disabled');
  });

  it('a bounce rule bounces a temporary reply at the first attempt', async () => {
    await injectHttp(t, [{ to: ['ghost@bounce.test'] }]);
    const b = await waitForRecord(t, 'ghost@bounce.test', 'Bounce');
    assert.equal(b.attempt, 1);
    assert.equal(b.reply.code, 450);
    assert.equal(b.rule?.name, 'unknown-bounce');
    assert.equal(b.rule?.action, 'bounce');
    const tfs = recordsOf(t, 'ghost@bounce.test').filter((r) => r.type === 'TransientFailure');
    assert.equal(tfs.length, 0);
  });

  it('a threshold rule acts only at its third matching reply on one ready queue', async () => {
    const site = 'mx.threshold.test';
    const active = () => t.engine.controls.actions().filter((a) => a.site === site);
    await injectHttp(t, [{ to: ['one@threshold.test'], pool: 'conly' }]);
    await waitForRecord(t, 'one@threshold.test', 'TransientFailure');
    await injectHttp(t, [{ to: ['two@threshold.test'], pool: 'conly' }]);
    await waitForRecord(t, 'two@threshold.test', 'TransientFailure');
    assert.equal(active().length, 0, 'two replies: no action yet');
    await injectHttp(t, [{ to: ['three@threshold.test'], pool: 'conly' }]);
    const tf = await waitForRecord(t, 'three@threshold.test', 'TransientFailure');
    assert.equal(tf.rule?.name, 'slow-down-3');
    const [a] = active();
    assert.equal(a?.kind, 'backoff');
    assert.equal(a?.rule, 'slow-down-3');
    t.engine.controls.lift(a!.id);
  });

  it("a paused source's mail leaves from the other source of the pool", async () => {
    t.engine.controls.pause('source', 'a');
    try {
      await injectHttp(t, oneEach('pausesrc.test', 20));
      await rx.pausesrc!.waitForMessages(20, 10_000);
      assert.ok(rx.pausesrc!.messages.every((m) => m.remoteAddress === B));
    } finally {
      t.engine.controls.resume('source', 'a');
    }
    await injectHttp(t, oneEach('pausesrc.test', 20, { subject: 'after' }));
    await rx.pausesrc!.waitForMessages(40, 10_000);
    const after = rx.pausesrc!.messages.slice(20).map((m) => m.remoteAddress);
    assert.ok(after.includes(A), 'a sends again once resumed');
  });
});
