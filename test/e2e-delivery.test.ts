/**
 * End to end: messages injected into a real engine over SMTP are delivered through real DNS
 * lookups to scripted receivers on loopback addresses; assertions are on what the receivers
 * got and on the records.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  accept,
  atStage,
  compose,
  dropMidData,
  greylist,
  rejectAll,
  stallAt,
  tempFailFirst,
  TestWorld,
  unknownUsers,
} from '../src/testworld/index.js';
import {
  api,
  injectSmtp,
  recordsOf,
  simpleMessage,
  startEngine,
  waitFor,
  waitForRecord,
  type TestEngine,
} from './support/harness.js';

describe('direct delivery', () => {
  let world: TestWorld;
  let t: TestEngine;

  before(async () => {
    world = await TestWorld.start();
    t = await startEngine(world);
  });
  after(async () => {
    await t?.stop();
    await world?.stop();
  });

  it('delivers through MX and records Reception and Delivery with the details', async () => {
    const rx = await world.addProvider(['plain.test'], { script: accept() });
    const res = await injectSmtp(
      t.smtpPort,
      'a@sender.test',
      ['bob@plain.test'],
      simpleMessage('a@sender.test', 'bob@plain.test'),
    );
    assert.equal(res.data?.code, 250);
    const id = /queued as (\S+)/.exec(res.data?.text ?? '')?.[1];
    assert.ok(id, 'the 250 names the message id');
    await rx.waitForMessages(1, 5000);
    const got = rx.messages[0]!;
    assert.deepEqual(got.to, ['bob@plain.test']);
    assert.equal(got.from, 'a@sender.test');
    assert.match(got.data.toString(), /^Received: from client\.test/);
    assert.match(got.data.toString(), /Message-ID: </);
    const delivery = await waitForRecord(t, 'bob@plain.test', 'Delivery');
    assert.equal(delivery.messageId, id);
    assert.equal(delivery.mxHost, 'mx.plain.test');
    assert.equal(delivery.mxIp, rx.host);
    assert.equal(delivery.localIp, '127.0.0.1');
    assert.equal(delivery.attempt, 1);
    assert.equal(delivery.reply.code, 250);
    assert.equal(delivery.queue, 'default');
    const types = t.engine.recorder.forMessage(id).map((r) => r.type);
    assert.deepEqual(types, ['Reception', 'Delivery']);
  });

  it('tries the next MX when the first refuses connections', async () => {
    const rx = await world.addProvider(['backup.test'], { mxName: 'mx2.backup.test' });
    world.dns.set('mx1.backup.test', { a: [world.nextIp()] }); // nothing listens there
    world.dns.set('backup.test', {
      mx: [
        { exchange: 'mx1.backup.test', priority: 10 },
        { exchange: 'mx2.backup.test', priority: 20 },
      ],
    });
    await injectSmtp(
      t.smtpPort,
      'a@sender.test',
      ['x@backup.test'],
      simpleMessage('a@sender.test', 'x@backup.test'),
    );
    await rx.waitForMessages(1, 5000);
    const d = await waitForRecord(t, 'x@backup.test', 'Delivery');
    assert.equal(d.mxHost, 'mx2.backup.test');
  });

  it('tries the next MX when the first answers 421 to the greeting', async () => {
    const busy = await world.addProvider(['busyfirst-a.test'], {
      mxName: 'mx1.busyfirst.test',
      script: atStage('connect', '421 4.3.2 Service busy, try later'),
    });
    const ok = await world.addProvider(['busyfirst-b.test'], { mxName: 'mx2.busyfirst.test' });
    world.dns.set('busyfirst.test', {
      mx: [
        { exchange: 'mx1.busyfirst.test', priority: 10 },
        { exchange: 'mx2.busyfirst.test', priority: 20 },
      ],
    });
    const to = 'x@busyfirst.test';
    await injectSmtp(t.smtpPort, 'a@sender.test', [to], simpleMessage('a@sender.test', to));
    await ok.waitForMessages(1, 5000);
    assert.equal(busy.messages.length, 0);
    assert.ok(busy.connections.length >= 1, 'the first MX was tried');
    const d = await waitForRecord(t, to, 'Delivery');
    assert.equal(d.mxHost, 'mx2.busyfirst.test');
  });

  it('bounces at once for a Null MX (RFC 7505) with 5.1.10', async () => {
    world.dns.set('nullmx.test', { mx: [{ exchange: '', priority: 0 }] });
    await injectSmtp(
      t.smtpPort,
      'a@sender.test',
      ['x@nullmx.test'],
      simpleMessage('a@sender.test', 'x@nullmx.test'),
    );
    const b = await waitForRecord(t, 'x@nullmx.test', 'Bounce');
    assert.equal(b.reply.enhanced, '5.1.10');
    assert.equal(
      recordsOf(t, 'x@nullmx.test').filter((r) => r.type === 'TransientFailure').length,
      0,
    );
  });

  it('falls back to the A record when a domain has no MX', async () => {
    const rx = await world.addProvider(['other-a.test']);
    world.dns.set('amx.test', { a: [rx.host] });
    await injectSmtp(
      t.smtpPort,
      'a@sender.test',
      ['x@amx.test'],
      simpleMessage('a@sender.test', 'x@amx.test'),
    );
    await rx.waitForMessages(1, 5000);
    const d = await waitForRecord(t, 'x@amx.test', 'Delivery');
    assert.equal(d.mxHost, 'amx.test');
  });

  it('bounces a recipient whose domain does not exist (NXDOMAIN)', async () => {
    await injectSmtp(
      t.smtpPort,
      'a@sender.test',
      ['x@nowhere.test'],
      simpleMessage('a@sender.test', 'x@nowhere.test'),
    );
    const b = await waitForRecord(t, 'x@nowhere.test', 'Bounce');
    assert.equal(b.reply.code >= 500, true);
    assert.equal(b.reply.enhanced, '5.1.2');
  });

  it('defers on a temporary DNS failure and delivers once DNS answers', async () => {
    world.dns.set('flaky-dns.test', { servfail: true });
    await injectSmtp(
      t.smtpPort,
      'a@sender.test',
      ['x@flaky-dns.test'],
      simpleMessage('a@sender.test', 'x@flaky-dns.test'),
    );
    const tf = await waitForRecord(t, 'x@flaky-dns.test', 'TransientFailure');
    assert.equal(tf.reply.enhanced?.startsWith('4.'), true);
    world.dns.remove('flaky-dns.test');
    const rx = await world.addProvider(['flaky-dns.test']);
    await rx.waitForMessages(1, 8000);
    await waitForRecord(t, 'x@flaky-dns.test', 'Delivery');
  });

  it('retries after a 4xx and then delivers (attempt 2)', async () => {
    const rx = await world.addProvider(['tempfail.test'], {
      script: compose(tempFailFirst(1), accept()),
    });
    await injectSmtp(
      t.smtpPort,
      'a@sender.test',
      ['x@tempfail.test'],
      simpleMessage('a@sender.test', 'x@tempfail.test'),
    );
    const tf = await waitForRecord(t, 'x@tempfail.test', 'TransientFailure');
    assert.equal(tf.reply.code, 451);
    assert.ok(tf.nextAttemptAt, 'the next attempt time is recorded');
    const d = await waitForRecord(t, 'x@tempfail.test', 'Delivery', 8000);
    assert.equal(d.attempt, 2);
    assert.equal(rx.messages.length, 1);
  });

  it('sends several recipients in one transaction and bounces only the refused one', async () => {
    const rx = await world.addProvider(['multi.test'], {
      script: unknownUsers(['bob@multi.test']),
    });
    const to = ['ann@multi.test', 'bob@multi.test', 'cid@multi.test'];
    await injectSmtp(
      t.smtpPort,
      'a@sender.test',
      to,
      simpleMessage('a@sender.test', 'ann@multi.test'),
    );
    await rx.waitForMessages(1, 5000);
    assert.equal(rx.messages.length, 1, 'one transaction for the three recipients');
    assert.deepEqual(rx.messages[0]!.to.sort(), ['ann@multi.test', 'cid@multi.test']);
    const b = await waitForRecord(t, 'bob@multi.test', 'Bounce');
    assert.equal(b.reply.enhanced, '5.1.1');
    await waitForRecord(t, 'ann@multi.test', 'Delivery');
    await waitForRecord(t, 'cid@multi.test', 'Delivery');
  });

  it('comes back after greylisting and delivers', async () => {
    const rx = await world.addProvider(['grey.test'], { script: greylist(1) });
    await injectSmtp(
      t.smtpPort,
      'a@sender.test',
      ['x@grey.test'],
      simpleMessage('a@sender.test', 'x@grey.test'),
    );
    const tf = await waitForRecord(t, 'x@grey.test', 'TransientFailure');
    assert.match(tf.reply.text, /[Gg]reylist/);
    await rx.waitForMessages(1, 8000);
    await waitForRecord(t, 'x@grey.test', 'Delivery');
  });

  it('defers when the connection drops in the middle of DATA, then delivers once', async () => {
    const rx = await world.addProvider(['drop.test'], { script: dropMidData(100) });
    const body = simpleMessage('a@sender.test', 'x@drop.test', 'big', 'y'.repeat(5000));
    await injectSmtp(t.smtpPort, 'a@sender.test', ['x@drop.test'], body);
    const tf = await waitForRecord(t, 'x@drop.test', 'TransientFailure');
    assert.equal(tf.reply.code, 451);
    assert.equal(rx.messages.length, 0);
    rx.setScript(accept());
    await rx.waitForMessages(1, 8000);
    await waitForRecord(t, 'x@drop.test', 'Delivery');
    assert.equal(rx.messages.length, 1);
  });

  it('uses STARTTLS when offered and says so in the record; plain text when not', async () => {
    const tlsRx = await world.addProvider(['tls.test'], { starttls: true });
    const plainRx = await world.addProvider(['notls.test'], { starttls: false });
    await injectSmtp(
      t.smtpPort,
      'a@sender.test',
      ['x@tls.test'],
      simpleMessage('a@sender.test', 'x@tls.test'),
    );
    await injectSmtp(
      t.smtpPort,
      'a@sender.test',
      ['x@notls.test'],
      simpleMessage('a@sender.test', 'x@notls.test'),
    );
    await tlsRx.waitForMessages(1, 5000);
    await plainRx.waitForMessages(1, 5000);
    assert.equal(tlsRx.messages[0]!.tls, true);
    assert.equal(plainRx.messages[0]!.tls, false);
    const d1 = await waitForRecord(t, 'x@tls.test', 'Delivery');
    const d2 = await waitForRecord(t, 'x@notls.test', 'Delivery');
    assert.equal(d1.tls, true);
    assert.equal(d2.tls, false);
  });

  it('reuses one connection for several messages to the same destination', async () => {
    const rx = await world.addProvider(['reuse.test']);
    const sends = [];
    for (let i = 0; i < 20; i++) {
      const to = `u${i}@reuse.test`;
      sends.push(injectSmtp(t.smtpPort, 'a@sender.test', [to], simpleMessage('a@sender.test', to)));
    }
    await Promise.all(sends);
    await rx.waitForMessages(20, 8000);
    assert.ok(rx.connections.length < 20, `${rx.connections.length} connections for 20 messages`);
  });

  it('traces an address before its first attempt has an outcome', async () => {
    await world.addProvider(['slowgreet.test'], { script: stallAt('connect') });
    const to = 'Waiting@slowgreet.test';
    await injectSmtp(t.smtpPort, 'a@sender.test', [to], simpleMessage('a@sender.test', to));
    const res = await api(
      t,
      'GET',
      `/api/v1/trace?q=${encodeURIComponent('waiting@SLOWGREET.test')}`,
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(
      res.body.records.map((r: { type: string }) => r.type),
      ['Reception'],
    );
    assert.equal(res.body.waiting[0].address, to);
  });

  it('bounces on a 5xx to every recipient at RCPT', async () => {
    await world.addProvider(['reject.test'], { script: rejectAll('550 5.7.1 Policy rejection') });
    await injectSmtp(
      t.smtpPort,
      'a@sender.test',
      ['x@reject.test'],
      simpleMessage('a@sender.test', 'x@reject.test'),
    );
    const b = await waitForRecord(t, 'x@reject.test', 'Bounce');
    assert.equal(b.reply.text, 'Policy rejection');
  });
});

describe('a destination that fails as a whole is held', () => {
  let world: TestWorld;
  let t: TestEngine;

  before(async () => {
    world = await TestWorld.start();
    t = await startEngine(world, {
      delivery: { holdAfterFailure: 1.5 },
      policy: { queues: { default: { retry: ['0.5s'], jitter: 0, maxAge: '30s' } } },
    });
  });
  after(async () => {
    await t?.stop();
    await world?.stop();
  });

  it('after a 421 it defers without connecting until the hold ends, then delivers', async () => {
    const rx = await world.addProvider(['held.test'], {
      script: compose(atStage('mail', '421 4.7.0 Too many messages, slow down'), accept()),
    });
    const first = 'a0@held.test';
    await injectSmtp(t.smtpPort, 'a@sender.test', [first], simpleMessage('a@sender.test', first));
    await waitForRecord(t, first, 'TransientFailure');
    const connectionsAtHold = rx.connections.length;
    for (let i = 1; i <= 5; i++) {
      const to = `a${i}@held.test`;
      await injectSmtp(t.smtpPort, 'a@sender.test', [to], simpleMessage('a@sender.test', to));
      const held = await waitForRecord(t, to, 'TransientFailure');
      assert.equal(held.stage, 'held');
      assert.match(held.reply.text, /held for 2s after: Too many messages/);
    }
    assert.equal(rx.connections.length, connectionsAtHold, 'no connection while held');
    const status = await api(t, 'GET', '/api/v1/status');
    const held = status.body.readyQueues.find((d: { domains: string[] }) =>
      d.domains.includes('held.test'),
    );
    assert.equal(held?.state, 'held', JSON.stringify(status.body.readyQueues));
    assert.match(held.reason, /^421 4\.7\.0 .*Too many messages/);
    assert.ok(Date.parse(held.until) > Date.now());
    rx.setScript(accept());
    await rx.waitForMessages(6, 10_000);
  });
});

describe('timeouts and expiry', () => {
  let world: TestWorld;
  let t: TestEngine;

  before(async () => {
    world = await TestWorld.start();
    t = await startEngine(world, {
      delivery: { timeouts: { rcpt: 0.4, dataDone: 0.4 } },
      policy: { queues: { default: { retry: ['0.5s'], jitter: 0, maxAge: '2s' } } },
    });
  });
  after(async () => {
    await t?.stop();
    await world?.stop();
  });

  it('times out a receiver that stalls (RFC 5321 §4.5.3.2) and retries', async () => {
    const rx = await world.addProvider(['stall.test'], { script: stallAt('rcpt') });
    await injectSmtp(
      t.smtpPort,
      'a@sender.test',
      ['x@stall.test'],
      simpleMessage('a@sender.test', 'x@stall.test'),
    );
    const tf = await waitForRecord(t, 'x@stall.test', 'TransientFailure');
    assert.equal(tf.reply.code >= 400 && tf.reply.code < 500, true);
    assert.match(tf.reply.text, /time/i);
    rx.setScript(accept());
    await rx.waitForMessages(1, 5000);
  });

  it('expires a recipient at its maximum age, with an Expiration record and nothing left', async () => {
    await world.addProvider(['always451.test'], { script: rejectAll('451 4.3.0 Try later') });
    const res = await injectSmtp(
      t.smtpPort,
      'a@sender.test',
      ['x@always451.test'],
      simpleMessage('a@sender.test', 'x@always451.test'),
    );
    const id = /queued as (\S+)/.exec(res.data?.text ?? '')?.[1] ?? '';
    const exp = await waitForRecord(t, 'x@always451.test', 'Expiration', 6000);
    assert.equal(exp.lastReply?.code, 451);
    assert.ok(exp.ageMs >= 2000 && exp.ageMs < 3500, 'expired near 2 s');
    await waitFor('the message to leave the spool', () => t.engine.spool.waiting(id).length === 0);
    assert.equal(t.engine.spool.body(id), null);
  });
});
