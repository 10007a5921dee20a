/**
 * The maildomain, key and account commands through the real CLI against a `gridpost serve`
 * child: add a maildomain, generate a key and see the record to publish, check it once the
 * test DNS serves it, the DNS status with its exit code, an imported PEM key, bad input.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { cliHarness } from './support/child-engine.js';
import { makeTestCa } from './support/test-ca.js';

describe('gridpost maildomains, keys and accounts', () => {
  const h = cliHarness('cli-md');
  const { cli, fails } = h;

  it('adds a maildomain and shows it', async () => {
    const added = await cli('maildomains', 'add', 'cli.test', '--queue', 'default');
    assert.match(added.stdout, /^cli\.test queue=default not signing/m);
    assert.match(added.stdout, /warning no active domain key/);
    const listed = await cli('maildomains', 'list');
    assert.match(listed.stdout, /^cli\.test queue=default/m);
  });

  it('generates a key, prints the record to publish, and activates it once DNS shows it', async () => {
    const gen = await cli('keys', 'generate', 'cli.test', '--selector', 'c1');
    assert.match(gen.stdout, /^c1 rsa-sha256 2048 bits pending \(not seen in DNS\)/m);
    const publish = /^publish: (c1\._domainkey\.cli\.test) TXT ((?:"[^"]*" ?)+)$/m.exec(gen.stdout);
    assert.ok(publish, gen.stdout);
    const strings = [...publish[2]!.matchAll(/"([^"]*)"/g)].map((m) => m[1]!);
    assert.ok(strings.length >= 2 && strings.every((s) => s.length <= 255));
    const pending = await cli('keys', 'check', 'cli.test', 'c1');
    assert.match(pending.stdout, /pending/);
    h.world.dns.set(publish[1]!, { txt: [strings.join('')] });
    const active = await cli('keys', 'check', 'cli.test', 'c1');
    assert.match(active.stdout, /^c1 rsa-sha256 2048 bits active since .* \(in DNS\)/m);
  });

  it('imports a PEM key, and warns about a 1024-bit one', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const file = join(h.dir, 'old.pem');
    writeFileSync(file, privateKey.export({ type: 'pkcs1', format: 'pem' }));
    const out = await cli('keys', 'import', 'cli.test', file, '--selector', 'old');
    assert.match(out.stdout, /^old rsa-sha256 1024 bits pending/m);
    assert.match(out.stdout, /warning: .*RSA-1024 is weak/);
    const json = JSON.parse((await cli('keys', 'list', 'cli.test', '--json')).stdout);
    assert.deepEqual(json.keys.map((k: { selector: string }) => k.selector).sort(), ['c1', 'old']);
    assert.doesNotMatch(JSON.stringify(json), /PRIVATE KEY/);
  });

  it('prints the DNS status with the fixes, exit code 1 while something is missing', async () => {
    await fails(['maildomains', 'dns', 'cli.test'], (e) => {
      assert.equal(e.code, 1);
      assert.match(e.stdout, /^cli\.test: (missing|wrong)/m);
      assert.match(e.stdout, /ok +dkim +c1\._domainkey\.cli\.test/);
      assert.match(e.stdout, /missing dmarc +_dmarc\.cli\.test/);
      assert.match(e.stdout, /fix: /);
    });
  });

  it('certifies an account from PEM files and from PKCS#12, lists and removes it', async () => {
    const ca = await makeTestCa();
    try {
      await cli('maildomains', 'add', 'example.org');
      const { certFile, keyFile } = ca.alice;
      const pem = await cli(
        'accounts',
        'add',
        'alice@example.org',
        '--cert',
        certFile,
        '--key-file',
        keyFile,
      );
      assert.match(pem.stdout, /^alice@example\.org valid until \S+ issuer="/m);
      const p12 = join(h.dir, 'alice.p12');
      writeFileSync(p12, ca.aliceP12);
      const again = await cli(
        'accounts',
        'add',
        'alice@example.org',
        '--p12',
        p12,
        '--password',
        ca.p12Password,
      );
      assert.match(again.stdout, /^alice@example\.org valid/m);
      const listed = JSON.parse((await cli('accounts', 'list', 'example.org', '--json')).stdout);
      assert.deepEqual(
        listed.accounts.map((a: { address: string }) => a.address),
        ['alice@example.org'],
      );
      assert.doesNotMatch(JSON.stringify(listed), /PRIVATE KEY/);
      await fails(
        [
          'accounts',
          'add',
          'alice@example.org',
          '--cert',
          ca.expired.certFile,
          '--key-file',
          ca.expired.keyFile,
        ],
        (e) => {
          assert.match(e.stderr, /E_CERT_EXPIRED/);
        },
      );
      assert.match((await cli('accounts', 'remove', 'alice@example.org')).stdout, /removed/);
    } finally {
      ca.remove();
    }
  });

  it('says what is wrong with bad input, with the code and the fix', async () => {
    await fails(['keys', 'generate', 'nowhere.test', '--selector', 'x'], (e) => {
      assert.equal(e.code, 1);
      assert.match(e.stderr, /E_NOT_FOUND: nowhere\.test is not a maildomain/);
    });
    await fails(
      ['keys', 'import', 'cli.test', join(h.dir, 'absent.pem'), '--selector', 'y'],
      (e) => {
        assert.match(e.stderr, /E_INPUT_FILE/);
      },
    );
    await fails(['accounts', 'add', 'a@cli.test', '--cert', join(h.dir, 'absent.pem')], (e) => {
      assert.match(e.stderr, /E_INPUT_FILE/);
    });
  });
});
