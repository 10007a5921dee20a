/**
 * Interoperability with real peers nobody here wrote, all on loopback: swaks and Postfix's
 * smtp-source inject into an in-process engine; a private Postfix instance and smtp-sink
 * receive from it. A missing tool fails the suite when CI is set, and skips it otherwise.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import {
  PrivatePostfix,
  SmtpSink,
  TestWorld,
  peersUnavailable,
  runPeer,
  smtpSource,
  type PeerResult,
  type Receiver,
  type SourceLoad,
} from '../src/testworld/index.js';
import {
  injectSmtp,
  recordsOf,
  simpleMessage,
  startEngine,
  waitFor,
  waitForRecord,
  type TestEngine,
} from './support/harness.js';

// A loopback address outside smtp.allowedNetworks below: only AUTH lets it relay.
const OUTSIDER = '127.0.0.77';
// Where the real receivers listen, on the test world's SMTP port: the world's own receivers
// take 127.0.1.x and up, so 127.0.3.x stays free for them.
const POSTFIX_IP = '127.0.3.1';
const SINK_IP = '127.0.3.2';
const USER = { name: 'alice', password: 'wonderland-secret' };
const FROM = 'a@sender.test';
// Bound on any one peer program run, in milliseconds; each finishes in well under 10 s here.
const RUN_TIMEOUT_MS = 30_000;

/** The describe() options for a suite needing programs: skip unless CI (where it must fail). */
function needs(names: string[], root = false): { skip?: string } {
  const why = peersUnavailable(names, { root });
  return why && !process.env.CI ? { skip: why } : {};
}

/** Fails the suite (in CI) when a program it needs is absent. */
function assertTools(names: string[], root = false): void {
  const why = peersUnavailable(names, { root });
  if (why) assert.fail(`interop: ${why}; CI must install them (.ci/run)`);
}

/** Runs swaks against the engine with the given extra arguments. */
function swaks(port: number, to: string, extra: string[] = []): Promise<PeerResult> {
  const base = ['--server', `127.0.0.1:${port}`, '--from', FROM, '--to', to];
  const args = [...base, '--helo', 'swaks.client.test', ...extra];
  return runPeer('swaks', args, { timeoutMs: RUN_TIMEOUT_MS });
}

/** The engine's message id from a "250 ... queued as <id>" line of a transcript. */
function queuedAs(transcript: string): string | undefined {
  return /<[-~] {1,2}250 [\d.]+ Ok: queued as (\S+)/.exec(transcript)?.[1];
}

/** Waits until the receiver has a message for `address`, and returns it. */
function messageFor(rx: Receiver, address: string) {
  return waitFor(`a message for ${address}`, () => rx.messages.find((m) => m.to.includes(address)));
}

/** smtp-source from load@sender.test into the engine, bounded by RUN_TIMEOUT_MS. */
function source(load: Pick<SourceLoad, 'to' | 'sessions' | 'messages' | 'size'>) {
  const where = { host: '127.0.0.1', port: t.smtpPort, from: 'load@sender.test' };
  return smtpSource({ ...where, ...load, timeoutMs: RUN_TIMEOUT_MS });
}

/** MX <domain> -> mx.<domain> -> ip in the test world's DNS. */
function pointMx(domain: string, ip: string): void {
  world.dns.set(domain, { mx: [{ exchange: `mx.${domain}`, priority: 10 }] });
  world.dns.set(`mx.${domain}`, { a: [ip] });
}

let world: TestWorld;
let t: TestEngine;

before(async () => {
  world = await TestWorld.start();
  t = await startEngine(world, { smtp: { allowedNetworks: ['127.0.0.1/32'], users: [USER] } });
});
after(async () => {
  await t?.stop();
  await world?.stop();
});

describe('swaks injecting into the engine', needs(['swaks']), () => {
  let rx: Receiver;

  before(async () => {
    assertTools(['swaks']);
    rx = await world.addProvider(['swaks.test']);
  });

  it('delivers a plain message and records the Delivery', async () => {
    const res = await swaks(t.smtpPort, 'plain@swaks.test');
    assert.equal(res.code, 0, res.stdout + res.stderr);
    const id = queuedAs(res.stdout);
    assert.ok(id, `swaks saw a 250 naming the message id:\n${res.stdout}`);
    const got = await messageFor(rx, 'plain@swaks.test');
    assert.match(got.data.toString(), /X-Mailer: swaks/);
    const d = await waitForRecord(t, 'plain@swaks.test', 'Delivery');
    assert.equal(d.messageId, id);
    assert.equal(d.mxIp, rx.host);
  });

  it('accepts a pipelined transaction (RFC 2920) with two recipients', async () => {
    const to = 'pipe1@swaks.test,pipe2@swaks.test';
    const res = await swaks(t.smtpPort, to, ['--pipeline']);
    assert.equal(res.code, 0, res.stdout + res.stderr);
    // Pipelining, swaks writes MAIL, both RCPTs and DATA before it reads any reply.
    assert.match(res.stdout, / -> MAIL FROM:.*\n -> RCPT TO:.*\n -> RCPT TO:.*\n -> DATA/);
    await messageFor(rx, 'pipe1@swaks.test');
    await waitForRecord(t, 'pipe1@swaks.test', 'Delivery');
    await waitForRecord(t, 'pipe2@swaks.test', 'Delivery');
  });

  it('relays for an outside address after STARTTLS and AUTH PLAIN', async () => {
    const auth = ['--auth', 'PLAIN', '--auth-user', USER.name, '--auth-password', USER.password];
    const extra = ['--tls', ...auth, '--local-interface', OUTSIDER];
    const res = await swaks(t.smtpPort, 'authed@swaks.test', extra);
    assert.equal(res.code, 0, res.stdout + res.stderr);
    assert.match(res.stdout, /<- {1,2}220 .*\n=== TLS started/);
    // After STARTTLS swaks marks the lines it exchanges inside TLS with '~'.
    assert.match(res.stdout, /<~ {1,2}235 2\.7\.0 Authentication successful/);
    assert.ok(queuedAs(res.stdout), 'the 250 came inside TLS');
    const got = await messageFor(rx, 'authed@swaks.test');
    assert.match(got.data.toString(), /^Received: from swaks\.client\.test \(\[127\.0\.0\.77\]\)/);
    assert.match(got.data.toString(), /with ESMTPSA id/, 'Received names TLS and AUTH (RFC 3848)');
    const d = await waitForRecord(t, 'authed@swaks.test', 'Delivery');
    const reception = t.engine.recorder.forMessage(d.messageId).find((r) => r.type === 'Reception');
    assert.deepEqual(reception?.type === 'Reception' && reception.client, {
      ip: OUTSIDER,
      user: USER.name,
    });
  });

  it('refuses to relay for an outside address without AUTH: 554 5.7.1', async () => {
    const res = await swaks(t.smtpPort, 'denied@swaks.test', ['--local-interface', OUTSIDER]);
    // swaks exits 24 when the server refuses a RCPT.
    assert.equal(res.code, 24, res.stdout + res.stderr);
    assert.match(res.stdout, /<\*\* {1,2}554 5\.7\.1 Relay access denied/);
    const rejected = await waitForRecord(t, 'denied@swaks.test', 'Rejected');
    assert.equal(rejected.reason, 'relay-denied');
    assert.equal(rx.messages.filter((m) => m.to.includes('denied@swaks.test')).length, 0);
  });
});

describe('smtp-source injecting into the engine', needs(['smtp-source']), () => {
  before(() => assertTools(['smtp-source']));

  it('delivers all 500 messages sent over 5 reused sessions', { timeout: 30_000 }, async () => {
    const rx = await world.addProvider(['source.test'], { retainMessages: 10 });
    const before = t.engine.status.counters.delivered;
    const res = await source({ to: 'rx@source.test', sessions: 5, messages: 500, size: 5120 });
    assert.equal(res.code, 0, `smtp-source: ${res.stderr}`);
    await rx.waitForMessages(500, 20_000);
    assert.equal(rx.messageCount, 500);
    assert.ok(rx.messages.every((m) => m.data.length > 5120 && m.to[0] === 'rx@source.test'));
    const delivered = () => t.engine.status.counters.delivered - before >= 500;
    await waitFor('500 Delivery records', delivered);
    assert.equal(t.engine.status.counters.delivered - before, 500);
  });
});

describe('Postfix as the receiving MX', needs(['postfix', 'postconf'], true), () => {
  let postfix: PrivatePostfix | undefined;

  before(async () => {
    assertTools(['postfix', 'postconf'], true);
    const listen = `${POSTFIX_IP}:${world.smtpPort}`;
    const mailboxes = { domain: 'postfix.test', users: ['alice'] };
    postfix = await PrivatePostfix.start({ listen, hostname: 'mx.postfix.test', mailboxes });
    pointMx('postfix.test', POSTFIX_IP);
  });
  after(async () => {
    await postfix?.stop();
  });

  it('lands the message in the maildir, with our Received and their queue id', async () => {
    const to = 'alice@postfix.test';
    const res = await injectSmtp(t.smtpPort, FROM, [to], simpleMessage(FROM, to));
    const id = /queued as (\S+)/.exec(res.data?.text ?? '')?.[1];
    assert.ok(id, 'the engine accepted the message');
    const maildir = () => postfix!.maildir('postfix.test', 'alice')[0];
    const file = await waitFor('the maildir file', maildir);
    const text = readFileSync(file, 'utf8');
    // Our trace field, as the intake wrote it; Postfix stores the maildir file with LF ends.
    const ours =
      'Received: from client.test ([127.0.0.1])\n' +
      `\tby engine.test (Gridpost) with ESMTP id ${id}`;
    assert.ok(text.includes(ours), `our Received field in:\n${text}`);
    const theirs = /by mx\.postfix\.test \(Postfix\) with ESMTP id (\w+)/.exec(text)?.[1];
    assert.ok(theirs, 'Postfix added its Received field with its queue id');
    const d = await waitForRecord(t, to, 'Delivery');
    assert.equal(d.mxHost, 'mx.postfix.test');
    assert.equal(d.mxIp, POSTFIX_IP);
    assert.equal(d.reply.code, 250);
    assert.equal(d.reply.text, `Ok: queued as ${theirs}`);
  });

  it('records a Bounce for the user Postfix does not know (550 5.1.1)', async () => {
    const to = 'nobody-here@postfix.test';
    await injectSmtp(t.smtpPort, FROM, [to], simpleMessage(FROM, to));
    const b = await waitForRecord(t, to, 'Bounce');
    assert.equal(b.reply.code, 550);
    assert.equal(b.reply.enhanced, '5.1.1');
    assert.match(b.reply.text, /User unknown in virtual mailbox table/);
    const types = recordsOf(t, to).map((r) => r.type);
    assert.deepEqual(types, ['Bounce'], 'one attempt: no retry of a permanent refusal');
  });
});

describe('smtp-sink as a fast receiver', needs(['smtp-sink', 'smtp-source']), () => {
  let sink: SmtpSink | undefined;

  before(async () => {
    assertTools(['smtp-sink', 'smtp-source']);
    sink = await SmtpSink.start(SINK_IP, world.smtpPort);
    pointMx('sink.test', SINK_IP);
  });
  after(() => sink?.stop());

  it('delivers 1,000 messages, each with a Delivery record', { timeout: 30_000 }, async () => {
    const before = t.engine.status.counters.delivered;
    const res = await source({ to: 'rx@sink.test', sessions: 10, messages: 1000, size: 1024 });
    assert.equal(res.code, 0, `smtp-source: ${res.stderr}`);
    const counted = () => t.engine.status.counters.delivered - before >= 1000;
    await waitFor('1000 Delivery records', counted, 20_000);
    assert.equal(t.engine.status.counters.delivered - before, 1000);
    await waitFor('smtp-sink to count 1000 messages', () => sink!.count >= 1000);
    assert.equal(sink!.count, 1000);
  });
});

describe(
  'Postfix bouncing later to the bounce listener',
  needs(['postfix', 'postconf', 'swaks'], true),
  () => {
    const PF_IP = '127.0.3.3';
    const BOUNCE_DOMAIN = 'bounces.engine.test';
    let postfix: PrivatePostfix | undefined;
    let tb: TestEngine;

    before(async () => {
      assertTools(['postfix', 'postconf', 'swaks'], true);
      tb = await startEngine(world, { bounces: { domain: BOUNCE_DOMAIN, listen: '127.0.0.1:0' } });
      const listener = tb.engine.listening.bounces!;
      postfix = await PrivatePostfix.start({
        listen: `${PF_IP}:${world.smtpPort}`,
        hostname: 'mx.pfbounce.test',
        mailboxes: { domain: 'pfbounce.test', users: ['alice'] },
        params: {
          // Take mail for unknown users, then bounce it: the asynchronous bounce under test.
          smtpd_reject_unlisted_recipient: 'no',
          // Postfix's DSNs to our return paths go to the listener (there is no DNS for Postfix).
          transport_maps: `inline:{ ${BOUNCE_DOMAIN}=smtp:[127.0.0.1]:${listener.port} }`,
        },
      });
      pointMx('pfbounce.test', PF_IP);
    });
    after(async () => {
      await postfix?.stop();
      await tb?.stop();
    });

    it('maps the DSN Postfix sends days later (here: at once) to the recipient', async () => {
      const to = 'nobody@pfbounce.test';
      await injectSmtp(tb.smtpPort, FROM, [to], simpleMessage(FROM, to));
      const delivery = await waitForRecord(tb, to, 'Delivery');
      assert.equal(delivery.mxIp, PF_IP);
      const bounce = await waitForRecord(tb, to, 'AsyncBounce', 20_000);
      assert.equal(bounce.recipientId, delivery.recipientId);
      assert.equal(bounce.format, 'rfc3464');
      assert.equal(bounce.status, '5.1.1');
      assert.equal(bounce.reportingMta, 'mx.pfbounce.test');
      assert.match(bounce.diagnostic ?? '', /unknown user/);
      assert.deepEqual([bounce.bounce.category, bounce.bounce.class], ['bad-mailbox', 'hard']);
      const again = await injectSmtp(tb.smtpPort, FROM, [to], simpleMessage(FROM, to));
      assert.equal(again.rcptReplies[0]?.code, 550, 'suppressed after the async bounce');
    });

    it('takes an ARF report from swaks at the feedback-loop mailbox', async () => {
      const rx = await world.addProvider(['fbl.test']);
      const to = 'reader@fbl.test';
      await injectSmtp(tb.smtpPort, FROM, [to], simpleMessage(FROM, to));
      await waitForRecord(tb, to, 'Delivery');
      const sent = await messageFor(rx, to);
      const report = [
        'From: fbl@isp.test',
        `To: fbl@${BOUNCE_DOMAIN}`,
        'Subject: FW: complaint',
        'MIME-Version: 1.0',
        'Content-Type: multipart/report; report-type=feedback-report; boundary="arf"',
        '',
        '--arf',
        'Content-Type: text/plain',
        '',
        'A user reported this message as spam.',
        '--arf',
        'Content-Type: message/feedback-report',
        '',
        'Feedback-Type: abuse',
        'User-Agent: isp-fbl/2.1',
        'Version: 1',
        '',
        '--arf',
        'Content-Type: message/rfc822',
        '',
        `Return-Path: <${sent.from}>`,
        sent.data.toString(),
        '--arf--',
        '',
      ].join('\r\n');
      const base = ['--server', `127.0.0.1:${tb.engine.listening.bounces!.port}`];
      const args = [...base, '--from', 'fbl@isp.test', '--to', `fbl@${BOUNCE_DOMAIN}`];
      const res = await runPeer('swaks', [...args, '--data', '-'], {
        timeoutMs: RUN_TIMEOUT_MS,
        input: report,
      });
      assert.equal(res.code, 0, res.stdout + res.stderr);
      const c = await waitForRecord(tb, to, 'Complaint');
      assert.equal(c.feedbackType, 'abuse');
      assert.equal(c.matchedBy, 'quoted-return-path');
    });
  },
);
