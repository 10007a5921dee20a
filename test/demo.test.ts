/**
 * The demo end to end, in-process: a small run against the demo world, asserting the summary
 * it computes from the records; and the reply masking that groups the reasons.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import { pino } from 'pino';
import { runDemo, type DemoResult } from '../src/demo/run.js';
import { silentOutput } from '../src/demo/screen.js';
import { maskReply, type ReasonType } from '../src/demo/tally.js';

// 40 messages per provider. busy.demo takes 10 a second so that it must answer 421.
const MESSAGES = 200;
const PER_PROVIDER = MESSAGES / 5;

describe('npm run demo', () => {
  let result: DemoResult;

  before(async () => {
    result = await runDemo({
      messages: MESSAGES,
      busyPerSecond: 10,
      timeLimitMs: 35_000,
      output: silentOutput,
      log: pino({ level: 'silent' }),
    });
  });

  const provider = (domain: string) => {
    const p = result.providers.find((x) => x.domain === domain);
    assert.ok(p, `${domain} is in the summary`);
    return p;
  };
  const reasonCount = (domain: string, type: ReasonType, reply: RegExp) =>
    provider(domain)
      .reasons.filter((r) => r.type === type && reply.test(r.reply))
      .reduce((n, r) => n + r.count, 0);

  it('injects everything over SMTP and HTTP and ends with nothing queued', () => {
    assert.equal(result.timedOut, false);
    assert.equal(result.waiting, 0);
    assert.equal(result.injected.accepted, MESSAGES);
    assert.equal(result.injected.refused, 0);
    assert.equal(result.injected.viaHttp, MESSAGES / 5);
    assert.equal(result.injected.viaSmtp, MESSAGES - MESSAGES / 5);
  });

  it('lists every provider with its share, and nothing expired', () => {
    const domains = result.providers.map((p) => p.domain);
    assert.deepEqual(domains, [
      'inbox.demo',
      'greylist.demo',
      'strict.demo',
      'busy.demo',
      'tls.demo',
    ]);
    for (const p of result.providers) {
      assert.equal(p.received, PER_PROVIDER, p.domain);
      assert.equal(p.delivered + p.bounced, PER_PROVIDER, p.domain);
      assert.equal(p.expired, 0, p.domain);
    }
  });

  it('delivers everything to inbox.demo at the first attempt', () => {
    const p = provider('inbox.demo');
    assert.deepEqual([p.delivered, p.deferred, p.bounced], [PER_PROVIDER, 0, 0]);
  });

  it('bounces the unknown users (550 5.1.1) and full mailboxes (552 5.2.2) of strict.demo', () => {
    // Recipients 0, 10, 20, 30 are unknown; 5 and 25 have a full mailbox.
    assert.equal(reasonCount('strict.demo', 'Bounce', /^550 5\.1\.1 /), 4);
    assert.equal(reasonCount('strict.demo', 'Bounce', /^552 5\.2\.2 /), 2);
    assert.equal(provider('strict.demo').bounced, 6);
  });

  it('defers at greylist.demo with 451 4.7.1, then delivers', () => {
    const p = provider('greylist.demo');
    assert.ok(p.deferred >= PER_PROVIDER, `every recipient deferred at least once (${p.deferred})`);
    assert.equal(reasonCount('greylist.demo', 'TransientFailure', /^451 4\.7\.1 /), p.deferred);
    assert.equal(p.delivered, PER_PROVIDER);
  });

  it('gets 421s from busy.demo when pushed too fast, then delivers', () => {
    const p = provider('busy.demo');
    assert.ok(reasonCount('busy.demo', 'TransientFailure', /^421 4\.7\.0 /) > 0);
    // The demo's response rule backs busy.demo off at its first 421.
    assert.deepEqual(
      p.rules.map((r) => [r.name, r.action]),
      [['busy-demo-421', 'backoff']],
    );
    assert.equal(p.delivered, PER_PROVIDER);
  });

  it('traces a greylisted recipient from reception to delivery', () => {
    const trace = result.example?.trace ?? '';
    const types = trace.split('\n').map((line) => line.split(/\s+/)[1]);
    assert.equal(types[0], 'Reception');
    assert.equal(types[1], 'TransientFailure');
    assert.equal(types.at(-1), 'Delivery');
  });

  it('delivers to tls.demo over STARTTLS', () => {
    assert.equal(provider('tls.demo').deliveredTls, PER_PROVIDER);
  });

  it('removes its data directory', () => {
    assert.equal(existsSync(result.dataDir), false);
  });
});

describe('maskReply', () => {
  const cases = [
    {
      got: { code: 550, enhanced: '5.1.1', text: '<nobody0@strict.demo>: User unknown' },
      want: '550 5.1.1 <address>: User unknown',
    },
    {
      got: { code: 451, enhanced: '4.7.1', text: 'Greylisted, try again in 2 seconds' },
      want: '451 4.7.1 Greylisted, try again in N seconds',
    },
    {
      got: { code: 421, enhanced: null, text: 'Too busy\nCome back later' },
      want: '421 Too busy / Come back later',
    },
  ];
  for (const { got, want } of cases) {
    it(`masks "${got.text.split('\n')[0]}"`, () => assert.equal(maskReply(got), want));
  }
});
