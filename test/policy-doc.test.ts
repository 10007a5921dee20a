// The policy document: docs/policy.md's example is valid and means what it says; bad documents
// are refused with the key path; the start-up config's policy key is checked the same way.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { validateConfig } from '../src/config/load.js';
import { Policy, type PolicyEnvironment } from '../src/shaping/policy.js';
import { validatePolicy } from '../src/shaping/policy-service.js';

const ENV: PolicyEnvironment = {
  port: 25,
  helo: 'engine.test',
  connectTimeout: 30_000,
  defaultSource: { helo: 'engine.test' },
};

function docExample(): unknown {
  const text = readFileSync('docs/policy.md', 'utf8');
  const block = /## A complete example[^]*?```yaml\n([^]*?)```/.exec(text)?.[1];
  assert.ok(block, 'docs/policy.md has its example block');
  return parse(block);
}

describe('docs/policy.md', () => {
  it('its complete example is a valid policy', () => {
    const doc = validatePolicy(docExample(), 'docs/policy.md');
    assert.deepEqual(Object.keys(doc.queues), ['default', 'transactional', 'bulk']);
    assert.equal(doc.queues.transactional?.weight, 100);
  });

  it('its layers give the settings it describes', () => {
    const p = new Policy(validatePolicy(docExample()), ENV);
    const google = { name: 'aspmx.l.google.com', provider: 'google', ruleDomains: [] };
    const fromIp1 = p.settings('ip1', google);
    assert.equal(fromIp1.maxConnections, 5);
    assert.equal(fromIp1.messageRate?.text, '3000/min');
    assert.equal(p.settings('ip3', google).messageRate?.text, '1000/min');
    const partner = {
      name: 'mx.partner.example',
      provider: null,
      ruleDomains: ['partner.example'],
    };
    const s = p.settings('ip1', partner);
    assert.equal(s.maxConnections, 2);
    assert.equal(s.port, 2525);
    assert.deepEqual(s.retry, [600_000, 1_800_000]);
    assert.deepEqual(s.rules, ['base', 'everyone', 'partner']);
    assert.equal(p.optsOutOfRollup('small.example'), true);
    assert.equal(p.providerOf(['mx1.mx.partner.example']), 'partnermail');
  });
});

describe('policy validation', () => {
  const bad: [string, unknown, string, RegExp][] = [
    ['an unknown key', { queues: { bulk: { weigth: 5 } } }, 'queues.bulk', /weigth/],
    ['a weight out of range', { queues: { bulk: { weight: 5000 } } }, 'queues.bulk.weight', /1000/],
    ['a bad rate', { shaping: { x: { messageRate: 'fast' } } }, 'shaping.x.messageRate', /100\/s/],
    ['a bad duration', { queues: { q: { maxAge: 'soon' } } }, 'queues.q.maxAge', /duration/],
    [
      'a pool of unknown sources',
      { sources: { ip1: { address: '127.0.0.10' } }, pools: { p: { sources: { ip9: 1 } } } },
      'pools.p.sources.ip9',
      /no source "ip9"; sources: ip1/,
    ],
    ['a queue of an unknown pool', { queues: { q: { pool: 'nope' } } }, 'queues.q.pool', /nope/],
    [
      'a rule of an unknown provider',
      { shaping: { r: { provider: 'aol2', maxConnections: 1 } } },
      'shaping.r.provider',
      /no provider "aol2"/,
    ],
    [
      'a response rule without a pattern',
      { responseRules: { r: { action: 'suspend' } } },
      'responseRules.r',
      /at least one of code, enhanced, text/,
    ],
    [
      'a bad regular expression',
      { responseRules: { r: { text: '([', action: 'backoff' } } },
      'responseRules.r.text',
      /regular expression/,
    ],
    [
      'an unknown action',
      { responseRules: { r: { code: 421, action: 'panic' } } },
      'responseRules.r.action',
      /backoff/,
    ],
  ];
  for (const [what, raw, path, message] of bad) {
    it(`refuses ${what}, naming ${path}`, () => {
      assert.throws(
        () => validatePolicy(raw),
        (e: { code: string; path: string; message: string }) =>
          e.code === 'E_POLICY_INVALID' && e.path === path && message.test(e.message),
      );
    });
  }

  it('checks the start-up configuration policy key with paths under "policy."', () => {
    assert.throws(
      () => validateConfig({ policy: { queues: { q: { weight: 0 } } } }, 'gridpost.yaml'),
      (e: { code: string; path: string; message: string }) =>
        e.code === 'E_CONFIG_INVALID' &&
        e.path === 'policy.queues.q.weight' &&
        /gridpost\.yaml is invalid:\n {2}policy\.queues\.q\.weight/.test(e.message),
    );
  });

  it('says where the keys of the previous release went', () => {
    assert.throws(
      () => validateConfig({ delivery: { maxConnectionsPerDestination: 5 } }),
      /delivery\.maxConnectionsPerDestination: moved to policy\.shaping\.<rule>\.maxConnections/,
    );
    assert.throws(() => validateConfig({ queues: {} }), /queues: moved to policy\.queues/);
  });
});
