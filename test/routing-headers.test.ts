// SMTP injection names a queue and a pool with X-Gridpost-Queue / X-Gridpost-Pool: the fields
// choose them, leave the message before it is stored, and a name the policy lacks is refused.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { takeRoutingFields } from '../src/intake/routing-headers.js';
import { TestWorld, type Receiver } from '../src/testworld/index.js';
import { injectSmtp, startEngine, waitForRecord, type TestEngine } from './support/harness.js';

describe('routing header fields (table)', () => {
  const cases: { name: string; raw: string; queue?: string; pool?: string; rest: string }[] = [
    { name: 'none', raw: 'Subject: a\r\n\r\nbody\r\n', rest: 'Subject: a\r\n\r\nbody\r\n' },
    {
      name: 'both, CRLF, any case',
      raw: 'x-gridpost-queue: transactional\r\nSubject: a\r\nX-Gridpost-Pool:p1\r\n\r\nb\r\n',
      queue: 'transactional',
      pool: 'p1',
      rest: 'Subject: a\r\n\r\nb\r\n',
    },
    {
      name: 'folded, LF',
      raw: 'X-Gridpost-Queue:\n  bulk\nSubject: a\n\nb\n',
      queue: 'bulk',
      rest: 'Subject: a\n\nb\n',
    },
    {
      name: 'only the header section counts',
      raw: 'Subject: a\r\n\r\nX-Gridpost-Queue: bulk\r\n',
      rest: 'Subject: a\r\n\r\nX-Gridpost-Queue: bulk\r\n',
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = takeRoutingFields(Buffer.from(c.raw));
      assert.equal(got.queue, c.queue);
      assert.equal(got.pool, c.pool);
      assert.equal(got.raw.toString(), c.rest);
    });
  }
});

describe('SMTP injection into a named queue and pool', () => {
  let world: TestWorld;
  let t: TestEngine;
  let rx: Receiver;

  before(async () => {
    world = await TestWorld.start();
    rx = await world.addProvider(['routed.test']);
    t = await startEngine(world, {
      policy: {
        queues: { transactional: { weight: 100, retry: ['1s'], maxAge: '1m' } },
        sources: {
          main: { address: '127.0.0.30', helo: 'main.engine.test' },
          vip: { address: '127.0.0.31', helo: 'vip.engine.test' },
        },
        pools: { default: { sources: { main: 1 } }, vip: { sources: { vip: 1 } } },
      },
    });
  });
  after(async () => {
    await t?.stop();
    await world?.stop();
  });

  it('takes the queue and pool from the fields and strips them', async () => {
    const to = 'ann@routed.test';
    const raw =
      'From: <a@sender.test>\r\nX-Gridpost-Queue: transactional\r\n' +
      `X-Gridpost-Pool: vip\r\nTo: <${to}>\r\nSubject: hi\r\n\r\nHello.\r\n`;
    const res = await injectSmtp(t.smtpPort, 'a@sender.test', [to], raw);
    assert.equal(res.data?.code, 250);
    const d = await waitForRecord(t, to, 'Delivery');
    assert.equal(d.queue, 'transactional');
    assert.equal(d.source, 'vip');
    const m = rx.messages.find((x) => x.to.includes(to))!;
    assert.equal(m.remoteAddress, '127.0.0.31');
    assert.equal(m.helo, 'vip.engine.test');
    assert.doesNotMatch(m.data.toString(), /x-gridpost/i);
  });

  it('refuses a queue or pool the policy does not have, with 550 5.7.1', async () => {
    for (const field of ['X-Gridpost-Queue: nope', 'X-Gridpost-Pool: nope']) {
      const to = 'bob@routed.test';
      const raw = `From: <a@sender.test>\r\n${field}\r\nSubject: hi\r\n\r\nHello.\r\n`;
      const res = await injectSmtp(t.smtpPort, 'a@sender.test', [to], raw);
      assert.equal(res.data?.code, 550, field);
      assert.equal(res.data?.enhanced, '5.7.1');
      assert.match(res.data!.text, /names no (queue|pool) "nope"/);
    }
  });
});
