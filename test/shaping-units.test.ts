/**
 * Table-driven units of traffic shaping: the GCRA throttle (with an injected clock), the
 * layering of shaping settings, response-rule matching, and the weighted take of a ready queue.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReadyQueue } from '../src/delivery/ready-queue.js';
import { TriggerCounter } from '../src/shaping/actions.js';
import type { SmtpReply } from '../src/delivery/reply.js';
import { Policy, type SiteRef } from '../src/shaping/policy.js';
import { policySchema, type PolicyInput } from '../src/shaping/policy-schema.js';
import { parseRate } from '../src/shaping/rate.js';
import { Throttle } from '../src/shaping/throttle.js';
import type { QueuedRecipient } from '../src/spool/spool.js';

const ENV = {
  port: 25,
  defaultSource: {},
  helo: 'engine.test',
  connectTimeout: 30_000,
};

function policy(doc: PolicyInput): Policy {
  return new Policy(policySchema.parse(doc), ENV);
}

function rate(text: string) {
  const r = parseRate(text);
  assert.ok(r, `${text} parses`);
  return r;
}

describe('Throttle (GCRA)', () => {
  it('allows a burst of one interval ahead, then one event per interval', () => {
    let now = 1_000_000;
    const t = new Throttle(rate('20/s'), () => now);
    // Tolerance of one interval: two events at once, then every 50 ms.
    assert.equal(t.take(), true);
    assert.equal(t.take(), true);
    assert.equal(t.take(), false);
    assert.equal(t.waitMs(), 50);
    now += 49;
    assert.equal(t.take(), false);
    now += 1;
    assert.equal(t.take(), true);
  });

  it('keeps the long-run rate exact for costs and late timers', () => {
    const cases: { rate: string; cost: number; lateMs: number; want: number }[] = [
      { rate: '20/s', cost: 1, lateMs: 0, want: 20 },
      { rate: '20/s', cost: 1, lateMs: 7, want: 20 },
      { rate: '100/s', cost: 10, lateMs: 3, want: 100 },
      { rate: '600/min', cost: 1, lateMs: 0, want: 10 },
    ];
    for (const c of cases) {
      let now = 0;
      const t = new Throttle(rate(c.rate), () => now);
      let events = 0;
      // Ten simulated seconds, a caller that wakes `lateMs` after it was told to.
      while (now < 10_000) {
        if (t.take(c.cost)) events += c.cost;
        else now += t.waitMs() + c.lateMs;
      }
      const perSecond = events / 10;
      const err = Math.abs(perSecond - c.want) / c.want;
      assert.ok(err <= 0.05, `${c.rate} cost ${c.cost} late ${c.lateMs}: got ${perSecond}/s`);
    }
  });

  it('applies a new rate at once, keeping the debt owed', () => {
    let now = 0;
    const t = new Throttle(rate('1/s'), () => now);
    t.take();
    t.take();
    assert.equal(t.waitMs(), 1000);
    t.setRate(rate('10/s'));
    // The debt (TAT 2000 ms) stays; only the tolerance shrinks to the new interval.
    assert.equal(t.waitMs(), 1900);
    now = 1900;
    assert.equal(t.take(), true);
    assert.equal(t.waitMs(), 100);
  });
});

describe('Policy settings layering', () => {
  const p = policy({
    builtins: false,
    providers: { bigmail: { mx: ['*.bigmail.test'] } },
    shaping: {
      all: { maxConnections: 2, idleTimeout: 1 },
      'src-a': { source: 'a', maxConnections: 3, messageRate: '5/s' },
      big: { provider: 'bigmail', maxConnections: 4, maxMessagesPerConnection: 7 },
      'big-a': { provider: 'bigmail', source: 'a', maxConnections: 5 },
      dom: { domain: 'shop.test', maxConnections: 6, backoff: { messageRate: '1/s' } },
      'dom-a': { domain: 'shop.test', source: 'a', maxConnections: 7, tls: 'required' },
    },
  });
  const plain: SiteRef = { name: 'mx.plain.test', provider: null, ruleDomains: [] };
  const big: SiteRef = { name: 'mx1.bigmail.test', provider: 'bigmail', ruleDomains: [] };
  const shop: SiteRef = {
    name: 'mx1.bigmail.test',
    provider: 'bigmail',
    ruleDomains: ['shop.test'],
  };
  const cases: {
    name: string;
    source: string;
    site: SiteRef;
    want: Record<string, unknown>;
    rules: string[];
  }[] = [
    {
      name: 'default only',
      source: 'b',
      site: plain,
      want: { maxConnections: 2, idleTimeout: 1000, maxMessagesPerConnection: 100 },
      rules: ['base', 'all'],
    },
    {
      name: 'source over default',
      source: 'a',
      site: plain,
      want: { maxConnections: 3, messageRate: '5/s' },
      rules: ['base', 'all', 'src-a'],
    },
    {
      name: 'provider over source',
      source: 'a',
      site: big,
      want: { maxConnections: 5, maxMessagesPerConnection: 7, messageRate: '5/s' },
      rules: ['base', 'all', 'src-a', 'big', 'big-a'],
    },
    {
      name: 'provider without its source rule',
      source: 'b',
      site: big,
      want: { maxConnections: 4, maxMessagesPerConnection: 7, messageRate: null },
      rules: ['base', 'all', 'big'],
    },
    {
      name: 'domain over provider',
      source: 'b',
      site: shop,
      want: { maxConnections: 6, maxMessagesPerConnection: 7, tls: 'opportunistic' },
      rules: ['base', 'all', 'big', 'dom'],
    },
    {
      name: 'domain+source over everything',
      source: 'a',
      site: shop,
      want: { maxConnections: 7, tls: 'required', messageRate: '5/s' },
      rules: ['base', 'all', 'src-a', 'big', 'big-a', 'dom', 'dom-a'],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const s = p.settings(c.source, c.site);
      for (const [k, v] of Object.entries(c.want)) {
        const got = (s as unknown as Record<string, unknown>)[k];
        const shown = got && typeof got === 'object' && 'text' in got ? got.text : got;
        assert.equal(shown, v, `${k}`);
      }
      assert.deepEqual(s.rules, c.rules);
    });
  }

  it('merges backoff limits over the base ones', () => {
    const s = p.settings('b', shop);
    assert.equal(s.backoff.maxConnections, 1, 'from the base settings');
    assert.equal(s.backoff.messageRate?.text, '1/s', 'from the domain rule');
  });
});

describe('Policy.matchResponse', () => {
  const p = policy({
    builtins: false,
    responseRules: {
      'g-rate': { provider: 'google', enhanced: '4.7.28', action: 'backoff' },
      tss04: { code: 421, text: '\\[TSS04\\]', action: 'suspend' },
      banned: { code: '5xx', enhanced: '5.7.*', text: 'banned', action: 'disable-source' },
      'shop-unknown': { domain: 'shop.test', enhanced: '4.1.1', action: 'bounce' },
      'site-4xx': { site: 'mx.slow.test', code: '4xx', action: 'backoff' },
    },
  });
  const reply = (code: number, enhanced: string | null, text: string): SmtpReply => ({
    code,
    enhanced,
    text,
  });
  const at = (provider: string | null, site: string, domain: string) => ({
    provider,
    site,
    domain,
  });
  const cases: { name: string; r: SmtpReply; where: ReturnType<typeof at>; want: string | null }[] =
    [
      {
        name: 'enhanced code at its provider',
        r: reply(421, '4.7.28', 'unusual rate'),
        where: at('google', 'g', 'gmail.test'),
        want: 'g-rate',
      },
      {
        name: 'enhanced code elsewhere',
        r: reply(421, '4.7.28', 'unusual rate'),
        where: at(null, 'x', 'x.test'),
        want: null,
      },
      {
        name: 'code and text',
        r: reply(421, '4.7.0', '[TSS04] Messages temporarily deferred'),
        where: at(null, 'y', 'y.test'),
        want: 'tss04',
      },
      {
        name: 'text is case-insensitive, class code, enhanced wildcard',
        r: reply(550, '5.7.606', 'Access denied, BANNED sending IP'),
        where: at(null, 'y', 'y.test'),
        want: 'banned',
      },
      {
        name: 'wildcard needs an enhanced code',
        r: reply(550, null, 'banned'),
        where: at(null, 'y', 'y.test'),
        want: null,
      },
      {
        name: 'domain rule',
        r: reply(450, '4.1.1', 'user unknown'),
        where: at(null, 's', 'shop.test'),
        want: 'shop-unknown',
      },
      {
        name: 'site rule by class',
        r: reply(451, '4.3.0', 'try later'),
        where: at(null, 'mx.slow.test', 'slow.test'),
        want: 'site-4xx',
      },
      {
        name: 'nothing matches',
        r: reply(451, '4.3.0', 'try later'),
        where: at(null, 'mx.other.test', 'other.test'),
        want: null,
      },
    ];
  for (const c of cases) {
    it(c.name, () => {
      assert.equal(p.matchResponse(c.r, c.where)?.name ?? null, c.want);
    });
  }

  it('tries the document rules before the built-ins', () => {
    const withBuiltins = policy({
      responseRules: { mine: { enhanced: '4.7.28', action: 'suspend', duration: '1m' } },
    });
    const r = reply(421, '4.7.28', 'unusual rate');
    const got = withBuiltins.matchResponse(r, at('google', 'g', 'gmail.test'));
    assert.equal(got?.name, 'mine');
  });
});

describe('ReadyQueue weighted take', () => {
  let seq = 0;
  function rcpt(queue: string, messageId = `m${seq++}`, expiresAt = Infinity): QueuedRecipient {
    return {
      id: `${messageId}.${seq++}`,
      messageId,
      address: `x${seq}@site.test`,
      domain: 'site.test',
      queue,
      sender: 's@sender.test',
      size: 100,
      attempts: 0,
      receivedAt: 0,
      expiresAt,
      readyAt: 0,
    };
  }
  const site = { name: 'mx.site.test', provider: null, domain: 'site.test', mxHosts: [] };
  const weights: Record<string, number> = { bulk: 10, tx: 100, mid: 50 };
  const weight = (q: string) => weights[q] ?? 10;

  /** Takes `n` single-recipient transactions; returns the queue of each. */
  function takeQueues(q: ReadyQueue, n: number): string[] {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const batch = q.take(1, 0, weight, () => assert.fail('nothing expires'));
      if (batch.length === 0) break;
      out.push(batch[0]!.queue);
    }
    return out;
  }

  const cases: {
    name: string;
    fill: Record<string, number>;
    take: number;
    want: Record<string, number>;
  }[] = [
    {
      name: '10:100 takes 1:10',
      fill: { bulk: 500, tx: 500 },
      take: 110,
      want: { bulk: 10, tx: 100 },
    },
    {
      name: 'three lanes by weight',
      fill: { bulk: 500, mid: 500, tx: 500 },
      take: 160,
      want: { bulk: 10, mid: 50, tx: 100 },
    },
    { name: 'one lane takes everything', fill: { bulk: 30 }, take: 30, want: { bulk: 30 } },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const q = new ReadyQueue('default', site);
      for (const [queue, n] of Object.entries(c.fill))
        for (let i = 0; i < n; i++) q.push(rcpt(queue));
      const counts: Record<string, number> = {};
      for (const queue of takeQueues(q, c.take)) counts[queue] = (counts[queue] ?? 0) + 1;
      for (const [queue, want] of Object.entries(c.want)) {
        assert.ok(
          Math.abs((counts[queue] ?? 0) - want) <= 1,
          `${queue}: ${counts[queue]} of ${want}`,
        );
      }
    });
  }

  it('a lane that joins late goes at once, without credit for its idle time', () => {
    const q = new ReadyQueue('default', site);
    for (let i = 0; i < 1000; i++) q.push(rcpt('bulk'));
    takeQueues(q, 500);
    for (let i = 0; i < 20; i++) q.push(rcpt('tx'));
    const next = takeQueues(q, 22);
    // It starts level with bulk and, being heavier, wins the tie: it goes first.
    assert.equal(next[0], 'tx', next.join(','));
    // Level start: tx gets ~10 of 11, not all 20 in a row ahead of a stalled bulk lane.
    assert.ok(next.filter((x) => x === 'bulk').length >= 1, next.join(','));
  });

  it('takes the recipients of one message as one transaction, up to the maximum', () => {
    const q = new ReadyQueue('default', site);
    for (let i = 0; i < 5; i++) q.push(rcpt('bulk', 'one'));
    q.push(rcpt('bulk', 'two'));
    assert.deepEqual(
      q.take(3, 0, weight, () => {}).map((r) => r.messageId),
      ['one', 'one', 'one'],
    );
    assert.equal(q.take(10, 0, weight, () => {}).length, 2);
    assert.deepEqual(
      q.take(10, 0, weight, () => {}).map((r) => r.messageId),
      ['two'],
    );
    assert.equal(q.size, 0);
  });

  it('hands expired recipients to onExpired instead of the batch', () => {
    const q = new ReadyQueue('default', site);
    q.push(rcpt('bulk', 'old', 10));
    q.push(rcpt('bulk', 'new', 1000));
    const expired: string[] = [];
    const batch = q.take(10, 500, weight, (r) => expired.push(r.messageId));
    assert.deepEqual(expired, ['old']);
    assert.deepEqual(
      batch.map((r) => r.messageId),
      ['new'],
    );
  });
});

describe('threshold triggers', () => {
  // Each case: times (ms) of matching replies on one ready queue, and which of them act.
  const cases: { name: string; at: number[]; count: number; within: number; acts: boolean[] }[] = [
    { name: 'count 1 acts at once', at: [0, 5], count: 1, within: 1000, acts: [true, true] },
    {
      name: 'the third within the window acts',
      at: [0, 100, 200, 300],
      count: 3,
      within: 1000,
      acts: [false, false, true, false],
    },
    {
      name: 'replies older than the window do not count',
      at: [0, 100, 1500, 1600, 1700],
      count: 3,
      within: 1000,
      acts: [false, false, false, false, true],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      let now = 0;
      const counter = new TriggerCounter(() => now);
      const got = c.at.map((t) => {
        now = t;
        return counter.hit('r', 'src', 'site', { count: c.count, within: c.within });
      });
      assert.deepEqual(got, c.acts);
    });
  }

  it('counts each ready queue apart', () => {
    const counter = new TriggerCounter(() => 0);
    const t = { count: 2, within: 1000 };
    assert.equal(counter.hit('r', 'a', 'site', t), false);
    assert.equal(counter.hit('r', 'b', 'site', t), false);
    assert.equal(counter.hit('r', 'a', 'site', t), true);
  });
});
