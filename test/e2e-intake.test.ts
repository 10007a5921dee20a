/**
 * Intake end to end: who may relay, authentication, limits, and bad input over SMTP and HTTP.
 * Nothing refused may be queued; nothing accepted may be lost; the engine must keep running.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TestWorld, type Receiver } from '../src/testworld/index.js';
import {
  api,
  injectSmtp,
  simpleMessage,
  startEngine,
  waitFor,
  waitForRecord,
  type TestEngine,
} from './support/harness.js';
import { RawSmtp } from './support/raw-smtp.js';

const OUTSIDER = '127.0.0.77'; // a loopback address outside the allowed network below

describe('SMTP intake policy and bad input', () => {
  let world: TestWorld;
  let t: TestEngine;
  let rx: Receiver;

  before(async () => {
    world = await TestWorld.start();
    rx = await world.addProvider(['dest.test']);
    t = await startEngine(world, {
      smtp: {
        allowedNetworks: ['127.0.0.1/32'],
        users: [{ name: 'alice', password: 'wonderland-secret' }],
        maxMessageSize: 20_000,
        maxRecipients: 3,
      },
    });
  });
  after(async () => {
    await t?.stop();
    await world?.stop();
  });

  const queued = () => t.engine.status.counters.received;

  it('refuses relaying to an unknown client with 554 5.7.1 and queues nothing', async () => {
    const before = queued();
    const { c } = await RawSmtp.open(t.smtpPort, OUTSIDER);
    await c.cmd('EHLO outsider.test');
    assert.match(await c.cmd('MAIL FROM:<a@sender.test>'), /^250/);
    assert.match(await c.cmd('RCPT TO:<x@dest.test>'), /^554 5\.7\.1 /);
    assert.match(await c.cmd('DATA'), /^5\d\d/);
    c.close();
    await waitForRecord(t, 'x@dest.test', 'Rejected');
    assert.equal(queued(), before);
  });

  it('relays for an authenticated user after STARTTLS (AUTH PLAIN)', async () => {
    const { c } = await RawSmtp.open(t.smtpPort, OUTSIDER);
    const ehlo = await c.cmd('EHLO outsider.test');
    assert.match(ehlo, /STARTTLS/);
    assert.doesNotMatch(ehlo, /AUTH/, 'no AUTH offered in clear text');
    assert.match(await c.cmd('STARTTLS'), /^220/);
    await c.startTls();
    assert.match(await c.cmd('EHLO outsider.test'), /AUTH PLAIN LOGIN/);
    const bad = Buffer.from('\0alice\0wrong').toString('base64');
    assert.match(await c.cmd(`AUTH PLAIN ${bad}`), /^535 5\.7\.8/);
    const good = Buffer.from('\0alice\0wonderland-secret').toString('base64');
    assert.match(await c.cmd(`AUTH PLAIN ${good}`), /^235/);
    assert.match(await c.cmd('MAIL FROM:<a@sender.test>'), /^250/);
    assert.match(await c.cmd('RCPT TO:<auth@dest.test>'), /^250/);
    assert.match(await c.cmd('DATA'), /^354/);
    c.write(simpleMessage('a@sender.test', 'auth@dest.test') + '.\r\n');
    assert.match(await c.reply(), /^250 2\.0\.0 /);
    c.close();
    await waitForRecord(t, 'auth@dest.test', 'Delivery');
  });

  it('answers 552 5.3.4 to an oversize message and stays usable', async () => {
    const { c } = await RawSmtp.open(t.smtpPort);
    await c.cmd('EHLO client.test');
    assert.match(await c.cmd('MAIL FROM:<a@sender.test> SIZE=999999'), /^552 5\.3\.4/);
    await c.cmd('MAIL FROM:<a@sender.test>');
    await c.cmd('RCPT TO:<big@dest.test>');
    await c.cmd('DATA');
    c.write(simpleMessage('a@sender.test', 'big@dest.test', 's', 'z'.repeat(30_000)) + '.\r\n');
    assert.match(await c.reply(), /^552 5\.3\.4/);
    assert.match(await c.cmd('NOOP'), /^250/);
    c.close();
  });

  it('refuses too many recipients with 452 4.5.3', async () => {
    const { c } = await RawSmtp.open(t.smtpPort);
    await c.cmd('EHLO client.test');
    await c.cmd('MAIL FROM:<a@sender.test>');
    for (let i = 0; i < 3; i++) assert.match(await c.cmd(`RCPT TO:<r${i}@dest.test>`), /^250/);
    assert.match(await c.cmd('RCPT TO:<r4@dest.test>'), /^452 4\.5\.3/);
    c.close();
  });

  it('refuses a message with NUL bytes (554 5.6.0) and queues nothing', async () => {
    const before = queued();
    const { c } = await RawSmtp.open(t.smtpPort);
    await c.cmd('EHLO client.test');
    await c.cmd('MAIL FROM:<a@sender.test>');
    await c.cmd('RCPT TO:<nul@dest.test>');
    await c.cmd('DATA');
    c.write('Subject: x\r\n\r\nbad\0byte\r\n.\r\n');
    assert.match(await c.reply(), /^554 5\.6\.0/);
    c.close();
    assert.equal(queued(), before);
  });

  for (const seq of ['\n.\n', '\r\n.\n', '\n.\r\n', '\r.\r\n']) {
    it(`never ends DATA on ${JSON.stringify(seq)} (SMTP smuggling) and normalises it`, async () => {
      const before = queued();
      const delivered = rx.messages.filter((m) => m.to.includes('smuggle@dest.test')).length;
      const { c } = await RawSmtp.open(t.smtpPort);
      await c.cmd('EHLO client.test');
      await c.cmd('MAIL FROM:<a@sender.test>');
      await c.cmd('RCPT TO:<smuggle@dest.test>');
      await c.cmd('DATA');
      const smuggled = 'MAIL FROM:<evil@sender.test>\r\nRCPT TO:<victim@dest.test>\r\nDATA\r\n';
      c.write(`From: <a@sender.test>\r\nSubject: s\r\n\r\nfirst${seq}${smuggled}second\r\n.\r\n`);
      assert.match(await c.reply(), /^250 /);
      assert.match(await c.cmd('QUIT'), /^221/);
      c.close();
      await waitFor('one message queued', () => queued() === before + 1);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(queued(), before + 1, 'exactly one message');
      const smuggles = () => rx.messages.filter((m) => m.to.includes('smuggle@dest.test'));
      const got = await waitFor('the delivery', () => smuggles()[delivered]);
      const text = got.data.toString('latin1');
      assert.match(text, /first\r\n\.?\.?\r?\n?MAIL FROM:<evil@sender\.test>\r\n/, 'kept as text');
      assert.equal(/(?<!\r)\n|\r(?!\n)/.test(text), false, 'every line ends in CRLF');
      assert.equal(rx.recipients().includes('victim@dest.test'), false);
    });
  }

  it('survives garbage, over-long lines, unknown commands and abrupt disconnects', async () => {
    const { c } = await RawSmtp.open(t.smtpPort);
    assert.match(await c.cmd('XYZZY'), /^500 5\.5\.2/);
    assert.match(await c.cmd('MAIL FROM:<a@sender.test>'), /^503/);
    assert.match(await c.cmd('HELO ' + 'x'.repeat(5000)), /^500 5\.5\.6/);
    assert.match(await c.cmd('EHLO client.test'), /^250/);
    assert.match(await c.cmd('MAIL FROM:<not an address>'), /^501/);
    c.close();
    const { c: d } = await RawSmtp.open(t.smtpPort);
    d.write('\x16\x03\x01\x02\x00garbage-instead-of-tls\r\n');
    d.close();
    const { c: e } = await RawSmtp.open(t.smtpPort);
    await e.cmd('EHLO client.test');
    await e.cmd('MAIL FROM:<a@sender.test>');
    await e.cmd('RCPT TO:<cut@dest.test>');
    await e.cmd('DATA');
    e.write('Subject: cut\r\n\r\nhalf a mess');
    e.close();
    const res = await injectSmtp(
      t.smtpPort,
      'a@sender.test',
      ['alive@dest.test'],
      simpleMessage('a@sender.test', 'alive@dest.test'),
    );
    assert.equal(res.data?.code, 250, 'the engine still accepts mail');
    assert.equal(t.engine.recorder.forRecipient('cut@dest.test').length, 0);
  });
});

describe('HTTP injection', () => {
  let world: TestWorld;
  let t: TestEngine;
  let rx: Receiver;

  before(async () => {
    world = await TestWorld.start();
    rx = await world.addProvider(['dest.test']);
    t = await startEngine(world, { smtp: { maxRecipients: 5 } });
  });
  after(async () => {
    await t?.stop();
    await world?.stop();
  });

  it('accepts a structured message with 202 and ids, and delivers it', async () => {
    const res = await api(t, 'POST', '/api/v1/messages', {
      from: 'Shop <shop@sender.test>',
      to: ['ann@dest.test', 'bob@dest.test'],
      subject: 'Your order',
      text: 'Thanks',
      html: '<p>Thanks</p>',
      headers: { 'X-Campaign': 'c1' },
    });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const m = res.body.messages[0];
    assert.match(m.id, /^[A-Z0-9]+$/);
    assert.deepEqual(
      m.recipients.map((r: { id: string }) => r.id),
      [`${m.id}.1`, `${m.id}.2`],
    );
    await waitForRecord(t, 'bob@dest.test', 'Delivery');
    const sent = rx.messages.find((x) => x.to.includes('bob@dest.test'))!.data.toString();
    assert.match(
      sent,
      /^Received: from \[127\.0\.0\.1\]\r\n\tby engine\.test \(Gridpost\) with HTTP/,
    );
    assert.match(sent, /\r\nX-Campaign: c1\r\n/);
    assert.match(sent, /\r\nSubject: Your order\r\n/);
    assert.match(sent, /Content-Type: multipart\/alternative/);
    const got = await api(t, 'GET', `/api/v1/messages/${m.id}`);
    assert.equal(got.status, 200);
    const types = got.body.records.map((r: { type: string }) => r.type);
    assert.deepEqual(types, ['Reception', 'Delivery', 'Delivery']);
  });

  it('accepts a batch of raw messages with envelopes', async () => {
    const messages = [1, 2, 3].map((i) => ({
      envelope: { from: 'bulk@sender.test', to: [`raw${i}@dest.test`] },
      raw: simpleMessage('bulk@sender.test', `raw${i}@dest.test`),
    }));
    const res = await api(t, 'POST', '/api/v1/messages', { messages });
    assert.equal(res.status, 202);
    assert.equal(res.body.messages.length, 3);
    await waitForRecord(t, 'raw3@dest.test', 'Delivery');
  });

  const bad: [string, unknown, number, string, string?][] = [
    ['malformed JSON', '{"from": ', 400, 'E_BAD_JSON'],
    ['a wrong type', { from: 'a@sender.test', to: 42, text: 'x' }, 400, 'E_VALIDATION', 'to'],
    [
      'an unknown field',
      { from: 'a@sender.test', to: 'b@dest.test', colour: 'red' },
      400,
      'E_VALIDATION',
    ],
    [
      'a bad address',
      { from: 'a@sender.test', to: ['not-an-address'], text: 'x' },
      400,
      'E_BAD_ADDRESS',
    ],
    [
      'an unknown queue',
      { from: 'a@sender.test', to: 'b@dest.test', queue: 'nope' },
      400,
      'E_UNKNOWN_QUEUE',
    ],
    [
      'raw without envelope',
      { raw: 'Subject: x\r\n\r\nx' },
      400,
      'E_VALIDATION',
      'messages[0].envelope',
    ],
    [
      'too many recipients',
      {
        from: 'a@sender.test',
        to: ['1@d.test', '2@d.test', '3@d.test', '4@d.test', '5@d.test', '6@d.test'],
      },
      400,
      'E_TOO_MANY_RECIPIENTS',
    ],
  ];
  for (const [name, body, status, code, path] of bad) {
    it(`refuses ${name} with ${code}`, async () => {
      const before = t.engine.status.counters.received;
      const res = await api(t, 'POST', '/api/v1/messages', body);
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.equal(res.body.error.code, code);
      assert.ok(res.body.error.message.length > 5);
      assert.ok(res.body.error.fix);
      if (path) assert.equal(res.body.error.path, path);
      assert.equal(t.engine.status.counters.received, before);
    });
  }

  it('queues nothing of a batch when one message is bad', async () => {
    const before = t.engine.status.counters.received;
    const res = await api(t, 'POST', '/api/v1/messages', {
      messages: [
        {
          envelope: { from: 'a@sender.test', to: ['ok@dest.test'] },
          raw: 'From: a@sender.test\r\nSubject: ok\r\n\r\nok',
        },
        { envelope: { from: 'a@sender.test', to: ['ok2@dest.test'] }, raw: 'no header here' },
      ],
    });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'E_BAD_MESSAGE');
    assert.equal(res.body.error.path, 'messages[1]');
    assert.equal(t.engine.status.counters.received, before);
  });

  it('requires a valid API key and never returns it', async () => {
    const none = await fetch(`${t.http}/api/v1/status`);
    assert.equal(none.status, 401);
    assert.equal(
      ((await none.json()) as { error: { code: string } }).error.code,
      'E_AUTH_REQUIRED',
    );
    const wrong = await fetch(`${t.http}/api/v1/status`, {
      headers: { authorization: 'Bearer nope' },
    });
    assert.equal(
      ((await wrong.json()) as { error: { code: string } }).error.code,
      'E_AUTH_INVALID',
    );
    const ok = await api(t, 'GET', '/api/v1/status');
    assert.equal(ok.status, 200);
    assert.doesNotMatch(JSON.stringify(ok.body), /test-key/);
  });

  it('serves status, trace, metrics and the OpenAPI document', async () => {
    const status = await api(t, 'GET', '/api/v1/status');
    assert.ok(status.body.counters.delivered >= 1);
    assert.deepEqual(Object.keys(status.body.counters).sort(), [
      'bounced',
      'deferred',
      'delivered',
      'expired',
      'received',
      'recipientsReceived',
      'rejected',
    ]);
    assert.equal(status.body.queues[0].name, 'default');
    const trace = await api(t, 'GET', '/api/v1/trace?q=ann%40dest.test');
    assert.ok(trace.body.records.some((r: { type: string }) => r.type === 'Delivery'));
    const metrics = await (await fetch(`${t.http}/metrics`)).text();
    assert.match(metrics, /gridpost_recipient_outcomes_total\{outcome="delivered"\} [1-9]/);
    assert.match(metrics, /gridpost_queue_recipients\{queue="default"\}/);
    assert.match(metrics, /gridpost_injection_latency_seconds_bucket/);
    const openapi = await api(t, 'GET', '/api/v1/openapi.json');
    assert.ok(openapi.body.paths['/api/v1/messages']);
  });
});
