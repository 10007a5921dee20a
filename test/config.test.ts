/** Start-up configuration: defaults, and errors that name the bad key, its path and the fix. */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig, parseDnsEnv, validateConfig } from '../src/config/load.js';
import { GridpostError } from '../src/errors/catalogue.js';

describe('configuration', () => {
  it('has the documented defaults with no file', () => {
    const c = loadConfig(undefined);
    assert.equal(c.smtp.listen, '127.0.0.1:2525');
    assert.equal(c.http.listen, '127.0.0.1:8025');
    assert.equal(c.dataDir, './data');
    assert.equal(c.delivery.port, 25);
    assert.equal(c.hostname, hostname());
    assert.equal(c.policy, undefined);
    assert.deepEqual(c.smtp.allowedNetworks, ['127.0.0.0/8', '::1/128']);
  });

  const bad: [string, unknown, string, RegExp][] = [
    ['an unknown key', { smtp: { lisen: '1.2.3.4:25' } }, 'smtp', /lisen/],
    ['a bad address', { smtp: { listen: 'localhost' } }, 'smtp.listen', /HOST:PORT/],
    [
      'a bad duration',
      { policy: { queues: { bulk: { maxAge: 'forever' } } } },
      'policy.queues.bulk.maxAge',
      /duration/,
    ],
    ['a wrong type', { delivery: { port: '25' } }, 'delivery.port', /number/],
    [
      'a bad network',
      { smtp: { allowedNetworks: ['10.0.0.0'] } },
      'smtp.allowedNetworks.0',
      /network/,
    ],
    [
      'a bounce listener without a domain',
      { bounces: { listen: '0.0.0.0:25' } },
      'bounces.domain',
      /needs bounces\.domain/,
    ],
  ];
  for (const [name, raw, path, message] of bad) {
    it(`refuses ${name}, naming ${path}`, () => {
      assert.throws(
        () => validateConfig(raw, 'test.yaml'),
        (err: unknown) =>
          err instanceof GridpostError &&
          err.code === 'E_CONFIG_INVALID' &&
          err.path === path &&
          message.test(err.message) &&
          err.message.includes('test.yaml'),
      );
    });
  }

  it('reads YAML files and reports unreadable or broken ones with E_CONFIG_FILE', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gridpost-config-'));
    const good = join(dir, 'good.yaml');
    writeFileSync(good, 'hostname: mta.example.com\ndelivery:\n  port: 2526\n');
    assert.equal(loadConfig(good).delivery.port, 2526);
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, 'smtp: {listen: [\n');
    assert.throws(() => loadConfig(broken), { code: 'E_CONFIG_FILE' });
    assert.throws(() => loadConfig(join(dir, 'missing.yaml')), { code: 'E_CONFIG_FILE' });
  });

  it('parses GRIDPOST_DNS and refuses malformed values with E_CONFIG_DNS', () => {
    assert.deepEqual(parseDnsEnv('127.0.0.1:5353, [::1]:53'), ['127.0.0.1:5353', '[::1]:53']);
    assert.throws(() => parseDnsEnv('dns.example.com'), { code: 'E_CONFIG_DNS' });
    assert.throws(() => parseDnsEnv(''), { code: 'E_CONFIG_DNS' });
  });
});

describe('docs/configuration.md', () => {
  it('its full example is a valid configuration', async () => {
    const { readFileSync } = await import('node:fs');
    const { parse } = await import('yaml');
    const doc = readFileSync('docs/configuration.md', 'utf8');
    const example = /## Full example[^]*?```yaml\n([^]*?)```/.exec(doc)?.[1];
    assert.ok(example, 'the example block exists');
    const c = validateConfig(parse(example), 'docs/configuration.md');
    assert.equal(c.delivery.routes[0]?.domain, 'partner.example');
    assert.equal(c.spool.commitWindow, 0);
    assert.equal(c.bounces.domain, 'bounces.example.com');
  });
});
