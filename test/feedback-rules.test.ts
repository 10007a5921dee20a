// Feedback rules act on the installation: three soft bounces in the window mark an address
// inactive (suppressed), a block tags it, an expiry writes a RuleTriggered record; each once.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rejectAll } from '../src/testworld/behaviours.js';
import { TestWorld } from '../src/testworld/index.js';
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

const FROM = 'a@sender.test';

describe('feedback rules', () => {
  let world: TestWorld;
  let t: TestEngine;

  before(async () => {
    world = await TestWorld.start();
    await world.addProvider(['full.test'], { script: rejectAll('452 4.2.2 Mailbox full') });
    await world.addProvider(['block.test'], {
      script: rejectAll(
        '554 5.7.1 Service unavailable; client host blocked using zen.spamhaus.org',
      ),
    });
    t = await startEngine(world, {
      policy: {
        queues: { default: { retry: ['0.3s'], jitter: 0, maxAge: '30s' } },
        feedbackRules: {
          'inactive-after-3-soft': {
            when: { class: ['soft'] },
            count: 3,
            within: '30d',
            action: 'suppress',
            reason: 'inactive',
          },
          'tag-blocked': { when: { class: ['block'] }, action: 'tag', tag: 'blocked' },
          'tell-blocks': { when: { types: ['Bounce'], class: ['block'] }, action: 'event' },
        },
      },
    });
  });
  after(async () => {
    await t?.stop();
    await world?.stop();
  });

  it('suppresses an address as inactive after its third soft bounce, once', async () => {
    const to = 'ann@full.test';
    await injectSmtp(t.smtpPort, FROM, [to], simpleMessage(FROM, to));
    const s = await waitForRecord(t, to, 'Suppressed', 15_000);
    assert.equal(s.stage, 'attempt');
    assert.equal(s.suppression.reason, 'inactive');
    assert.equal(s.suppression.source, 'rule:inactive-after-3-soft');
    const triggered = recordsOf(t, to).filter((r) => r.type === 'RuleTriggered');
    assert.equal(triggered.length, 1);
    const soft = recordsOf(t, to).filter((r) => r.type === 'TransientFailure').length;
    assert.ok(soft >= 3 && soft <= 4, `${soft} soft bounces`);
  });

  it('tags a blocked address and writes an event for the installation', async () => {
    const to = 'bob@block.test';
    await injectSmtp(t.smtpPort, FROM, [to], simpleMessage(FROM, to));
    await waitForRecord(t, to, 'Bounce');
    const info = await waitFor('the tag', async () => {
      const res = await api(t, 'GET', `/api/v1/addresses/${to}`);
      return res.body.tags?.includes('blocked') ? res.body : null;
    });
    assert.equal(info.suppression, null, 'a block is about us, not the address');
    const events = await api(t, 'GET', '/api/v1/events?type=RuleTriggered&limit=100');
    const rules = events.body.events
      .filter((e: { recipient: string }) => e.recipient === to)
      .map((e: { rule: string; action: string }) => `${e.rule}:${e.action}`)
      .sort();
    assert.deepEqual(rules, ['tag-blocked:tag', 'tell-blocks:event']);
  });

  it('refuses a tag rule without a tag, naming the path', async () => {
    const res = await api(t, 'PUT', '/api/v1/policy/feedbackRules/x', {
      when: {},
      action: 'tag',
    });
    assert.equal(res.status, 400);
    assert.match(res.body.error.message, /feedbackRules\.x\.tag/);
  });
});
