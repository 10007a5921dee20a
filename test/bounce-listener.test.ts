// Asynchronous bounces and complaints end to end: every outgoing recipient gets a signed return
// path; a DSN sent to it later lands as an AsyncBounce on that recipient and suppresses the
// address; an ARF report at the feedback-loop mailbox becomes a Complaint; forged return paths
// and foreign domains are refused at RCPT, and auto-replies are taken but not counted.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openSession, RFC5321_TIMEOUTS } from '../src/delivery/smtp-client.js';
import { TestWorld, type Receiver } from '../src/testworld/index.js';
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

const FROM = 'news@sender.test';
const BOUNCE_DOMAIN = 'bounces.engine.test';
const RETURN_PATH = /^b-[0-9a-z]{17}-\d+-[0-9a-f]{16}@bounces\.engine\.test$/;

/** Sends one message to the bounce listener; returns the RCPT and final replies. */
async function report(t: TestEngine, from: string, to: string[], text: string) {
  const port = t.engine.listening.bounces!.port;
  const opened = await openSession({
    ip: '127.0.0.1',
    port,
    mxHost: 'mx.reporter.test',
    helo: 'mx.reporter.test',
    tls: 'disabled',
    timeouts: { ...RFC5321_TIMEOUTS, greeting: 5000, dataDone: 10000 },
  });
  if (!opened.ok) throw new Error(`cannot connect to the bounce listener: ${opened.reply.text}`);
  const data = Buffer.from(text.replace(/\r?\n/g, '\r\n'));
  const result = await opened.session.send({ from, recipients: to }, data);
  await opened.session.close();
  return result;
}

/** An RFC 3464 report as a remote MTA writes one, quoting the original's headers. */
function dsn(returnPath: string, recipient: string, status: string, diagnostic: string): string {
  return [
    'From: MAILER-DAEMON@mx.later.test (Mail Delivery System)',
    `To: ${returnPath}`,
    'Subject: Undelivered Mail Returned to Sender',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=delivery-status; boundary="B1"',
    '',
    '--B1',
    'Content-Type: text/plain',
    '',
    'I am sorry to inform you that your message could not be delivered.',
    '',
    '--B1',
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; mx.later.test',
    'Arrival-Date: Fri, 4 Dec 2026 12:00:00 +0000',
    '',
    `Final-Recipient: rfc822; ${recipient}`,
    `Original-Recipient: rfc822; ${recipient}`,
    'Action: failed',
    `Status: ${status}`,
    'Remote-MTA: dns; store.later.test',
    `Diagnostic-Code: smtp; ${diagnostic}`,
    '',
    '--B1',
    'Content-Type: text/rfc822-headers',
    '',
    `Return-Path: <${returnPath}>`,
    `From: <${FROM}>`,
    `To: <${recipient}>`,
    'Subject: Our news',
    '',
    '--B1--',
    '',
  ].join('\n');
}

/** An ARF report (RFC 5965) from a feedback loop, quoting the original with its Return-Path. */
function arf(returnPath: string, recipient: string, feedbackType = 'abuse'): string {
  return [
    'From: feedback@fbl.later.test',
    `To: fbl@${BOUNCE_DOMAIN}`,
    'Subject: Complaint about message',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=feedback-report; boundary="F1"',
    '',
    '--F1',
    'Content-Type: text/plain',
    '',
    'This is an email abuse report.',
    '',
    '--F1',
    'Content-Type: message/feedback-report',
    '',
    `Feedback-Type: ${feedbackType}`,
    'User-Agent: LaterFBL/1.0',
    'Version: 1',
    `Original-Mail-From: <${returnPath}>`,
    `Original-Rcpt-To: <${recipient}>`,
    'Source-IP: 127.0.0.1',
    '',
    '--F1',
    'Content-Type: message/rfc822',
    '',
    `Return-Path: <${returnPath}>`,
    `From: <${FROM}>`,
    `To: <${recipient}>`,
    'Subject: Our news',
    '',
    'Hello.',
    '',
    '--F1--',
    '',
  ].join('\n');
}

describe('the bounce listener', () => {
  let world: TestWorld;
  let rx: Receiver;
  let t: TestEngine;

  before(async () => {
    world = await TestWorld.start();
    rx = await world.addProvider(['later.test']);
    t = await startEngine(world, {
      bounces: { domain: BOUNCE_DOMAIN, listen: '127.0.0.1:0' },
      policy: {
        feedbackRules: {
          complainers: { when: { types: ['Complaint'] }, action: 'tag', tag: 'complainer' },
          'late-hard': { when: { types: ['AsyncBounce'], class: ['hard'] }, action: 'event' },
        },
      },
    });
  });
  after(async () => {
    await t?.stop();
    await world?.stop();
  });

  /** Sends a message to `to` and returns the return path the receiver saw. */
  async function deliver(to: string): Promise<string> {
    await injectSmtp(t.smtpPort, FROM, [to], simpleMessage(FROM, to));
    await waitForRecord(t, to, 'Delivery');
    const m = await waitFor(`the message for ${to}`, () => rx.messages.find((x) => x.to[0] === to));
    return m.from;
  }

  it('gives each recipient its own signed return path, one transaction each', async () => {
    const to = ['one@later.test', 'two@later.test'];
    await injectSmtp(t.smtpPort, FROM, to, simpleMessage(FROM, to[0]!));
    await waitFor('both deliveries', () =>
      to.every((a) => recordsOf(t, a).some((r) => r.type === 'Delivery')),
    );
    const got = to.map((a) => rx.messages.find((m) => m.to.includes(a))!);
    for (const m of got) {
      assert.match(m.from, RETURN_PATH);
      assert.equal(m.to.length, 1, 'one recipient per transaction');
    }
    assert.notEqual(got[0]!.from, got[1]!.from);
  });

  it('turns a later DSN into an AsyncBounce, suppresses the address and refuses the next message', async () => {
    const to = 'ann@later.test';
    const returnPath = await deliver(to);
    const res = await report(
      t,
      '',
      [returnPath],
      dsn(returnPath, to, '5.1.1', '550 5.1.1 <ann@later.test>: Recipient address rejected'),
    );
    assert.equal(res.data?.code, 250, JSON.stringify(res));
    const delivery = await waitForRecord(t, to, 'Delivery');
    const bounce = await waitForRecord(t, to, 'AsyncBounce');
    assert.equal(bounce.recipientId, delivery.recipientId);
    assert.equal(bounce.messageId, delivery.messageId);
    assert.equal(bounce.sender, FROM);
    assert.equal(bounce.action, 'failed');
    assert.equal(bounce.status, '5.1.1');
    assert.equal(bounce.remoteMta, 'store.later.test');
    assert.equal(bounce.reportingMta, 'mx.later.test');
    assert.equal(bounce.format, 'rfc3464');
    assert.equal(bounce.matchedBy, 'return-path');
    assert.deepEqual([bounce.bounce.category, bounce.bounce.class], ['bad-mailbox', 'hard']);

    // The reporting server lost our 250 and sends the same report again: taken, not counted.
    const twice = await report(
      t,
      '',
      [returnPath],
      dsn(returnPath, to, '5.1.1', '550 5.1.1 <ann@later.test>: Recipient address rejected'),
    );
    assert.equal(twice.data?.code, 250);
    assert.match(twice.data!.text, /duplicate/);
    assert.equal(recordsOf(t, to).filter((r) => r.type === 'AsyncBounce').length, 1);

    const entry = await waitFor('the suppression', async () => {
      const r = await api(t, 'GET', `/api/v1/suppressions/${to}`);
      return r.status === 200 ? r.body : null;
    });
    assert.equal(entry.reason, 'hard-bounce');
    const again = await injectSmtp(t.smtpPort, FROM, [to], simpleMessage(FROM, to));
    assert.equal(again.rcptReplies[0]?.code, 550);
    assert.match(again.rcptReplies[0]!.text, /suppression list \(hard-bounce\)/);

    const event = await waitForRecord(t, to, 'RuleTriggered');
    assert.deepEqual([event.rule, event.triggeredBy.type], ['late-hard', 'AsyncBounce']);
    const stats = await api(t, 'GET', '/api/v1/stats?by=domain&domain=later.test');
    assert.equal(stats.status, 200);
    assert.equal(stats.body.rows[0].bounced, 1, 'the async bounce is counted as bounced');
  });

  it('records a delay warning without suppressing', async () => {
    const to = 'slow@later.test';
    const returnPath = await deliver(to);
    const text = dsn(returnPath, to, '4.2.2', '452 4.2.2 Mailbox full').replace(
      'Action: failed',
      'Action: delayed',
    );
    assert.equal((await report(t, '', [returnPath], text)).data?.code, 250);
    const r = await waitForRecord(t, to, 'AsyncBounce');
    assert.equal(r.action, 'delayed');
    assert.equal(r.bounce.category, 'quota-issues');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal((await api(t, 'GET', `/api/v1/suppressions/${to}`)).status, 404);
  });

  it('turns an ARF report at the feedback-loop mailbox into a Complaint and suppresses', async () => {
    const to = 'bob@later.test';
    const returnPath = await deliver(to);
    const res = await report(
      t,
      'feedback@fbl.later.test',
      [`fbl@${BOUNCE_DOMAIN}`],
      arf(returnPath, to),
    );
    assert.equal(res.data?.code, 250);
    const c = await waitForRecord(t, to, 'Complaint');
    const delivery = await waitForRecord(t, to, 'Delivery');
    assert.equal(c.recipientId, delivery.recipientId);
    assert.equal(c.feedbackType, 'abuse');
    assert.equal(c.userAgent, 'LaterFBL/1.0');
    assert.equal(c.matchedBy, 'quoted-return-path');
    const entry = await waitFor('the suppression', async () => {
      const r = await api(t, 'GET', `/api/v1/suppressions/${to}`);
      return r.status === 200 ? r.body : null;
    });
    assert.equal(entry.reason, 'complaint');
    const tagged = await waitFor('the tag', async () => {
      const r = await api(t, 'GET', `/api/v1/addresses/${to}`);
      return r.body.tags?.includes('complainer') ? r.body : null;
    });
    assert.deepEqual(tagged.tags, ['complainer']);
    const stats = await api(t, 'GET', '/api/v1/stats?by=domain&domain=later.test');
    assert.equal(stats.body.rows[0].complained, 1);
  });

  it('records an authentication-failure report without suppressing or counting it', async () => {
    const to = 'erin@later.test';
    const returnPath = await deliver(to);
    const text = arf(returnPath, to, 'auth-failure');
    const res = await report(t, 'feedback@fbl.later.test', [`fbl@${BOUNCE_DOMAIN}`], text);
    assert.equal(res.data?.code, 250);
    const c = await waitForRecord(t, to, 'Complaint');
    assert.equal(c.feedbackType, 'auth-failure');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal((await api(t, 'GET', `/api/v1/suppressions/${to}`)).status, 404);
    const stats = await api(t, 'GET', '/api/v1/stats?by=domain&domain=later.test');
    assert.equal(stats.body.rows[0].complained, 1, 'still only the abuse report');
  });

  it('refuses forged return paths and foreign domains at RCPT, recording nothing', async () => {
    const to = 'carl@later.test';
    const returnPath = await deliver(to);
    const forged = returnPath.replace(/-([0-9a-f]{16})@/, (_m, mac: string) => {
      const flipped = (mac[0] === '0' ? '1' : '0') + mac.slice(1);
      return `-${flipped}@`;
    });
    const other = returnPath.replace(/-(\d+)-/, (_m, n: string) => `-${Number(n) + 1}-`);
    const res = await report(
      t,
      '',
      [forged, other, 'someone@elsewhere.test', `x@${BOUNCE_DOMAIN}`],
      dsn(forged, to, '5.1.1', '550 5.1.1 User unknown'),
    );
    assert.deepEqual(
      res.rcptReplies.map((r) => [r.code, r.enhanced]),
      [
        [550, '5.1.1'],
        [550, '5.1.1'],
        [550, '5.7.1'],
        [550, '5.1.1'],
      ],
    );
    assert.equal(res.data, undefined, 'no DATA without an accepted recipient');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.ok(!recordsOf(t, to).some((r) => r.type === 'AsyncBounce'));
    assert.equal((await api(t, 'GET', `/api/v1/suppressions/${to}`)).status, 404);
  });

  it('takes an auto-reply without counting it as a bounce', async () => {
    const to = 'dora@later.test';
    const returnPath = await deliver(to);
    const vacation = [
      `From: <${to}>`,
      `To: <${returnPath}>`,
      'Subject: Out of Office: Our news',
      'Auto-Submitted: auto-replied',
      '',
      'I am away until Monday and will read your message when I return.',
      '',
    ].join('\n');
    const res = await report(t, to, [returnPath], vacation);
    assert.equal(res.data?.code, 250);
    assert.match(res.data!.text, /auto-reply/);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.ok(!recordsOf(t, to).some((r) => r.type === 'AsyncBounce' || r.type === 'Complaint'));
    const metrics = await fetch(`${t.http}/metrics`).then((r) => r.text());
    assert.match(metrics, /gridpost_reports_total\{kind="auto-reply",result="auto-reply"\} 1/);
  });
});
