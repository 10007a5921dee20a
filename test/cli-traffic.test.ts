/**
 * The traffic and policy commands through the real CLI against a `gridpost serve` child:
 * policy export and apply round trip through a YAML file, a bad file refused with the key path
 * and a non-zero exit, entry edits, queue pauses, and a purge that needs a selection.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { cliHarness } from './support/child-engine.js';

describe('gridpost traffic and policy commands', () => {
  const h = cliHarness('cli-traffic');
  const { cli, fails } = h;

  it('exports the policy, applies an edited file, and exports what was applied', async () => {
    const exported = parse((await cli('policy', 'export')).stdout);
    assert.deepEqual(exported.queues.default, { retry: ['1s'], jitter: 0, maxAge: '1h' });
    const edited = {
      ...exported,
      queues: { ...exported.queues, bulk: { weight: 5, retry: ['10m'], maxAge: '2d' } },
    };
    const file = join(h.dir, 'policy.yaml');
    writeFileSync(file, `# ours\n${stringify(edited)}`);
    const applied = await cli('policy', 'apply', file);
    assert.match(applied.stdout, /^applied .*policy\.yaml: 2 queues, 1 shaping/);
    const yaml = (await cli('policy', 'export', '--format', 'yaml')).stdout;
    assert.deepEqual(parse(yaml), parse(readFileSync(file, 'utf8')));
    const json = JSON.parse((await cli('policy', 'export', '--format', 'json')).stdout);
    assert.deepEqual(json, edited);
  });

  it('checks a file without applying it on --dry-run', async () => {
    const file = join(h.dir, 'dry.json');
    writeFileSync(file, JSON.stringify({ queues: { only: { weight: 1 } } }));
    const dry = await cli('policy', 'apply', file, '--dry-run');
    assert.match(dry.stdout, /dry\.json is valid \(1 queues\); nothing changed/);
    const now = parse((await cli('policy', 'export')).stdout);
    assert.ok(now.queues.bulk && !now.queues.only, 'the policy in force is unchanged');
  });

  it('refuses a bad policy file naming each bad key path, exit code 1', async () => {
    const file = join(h.dir, 'bad.yaml');
    writeFileSync(file, 'queues:\n  bulk:\n    weight: 0\n    pool: nowhere\nshaping:\n  x: 3\n');
    await fails(['policy', 'apply', file], (e) => {
      assert.equal(e.code, 1);
      assert.match(e.stderr, /^gridpost: E_POLICY_INVALID: .*bad\.yaml: /);
      assert.match(e.stderr, /^\s+queues\.bulk\.weight: /m);
      assert.match(e.stderr, /^\s+shaping\.x: /m);
      assert.match(e.stderr, /^\s+fix: /m);
    });
    const now = parse((await cli('policy', 'export')).stdout);
    assert.equal(now.queues.bulk.weight, 5, 'the policy in force is unchanged');
  });

  it('refuses an unreadable or unparsable file with E_POLICY_FILE', async () => {
    const broken = join(h.dir, 'broken.yaml');
    writeFileSync(broken, 'queues: [unclosed\n');
    await fails(['policy', 'apply', broken], (e) => {
      assert.equal(e.code, 1);
      assert.match(e.stderr, /E_POLICY_FILE: .*broken\.yaml is not valid YAML or JSON/);
    });
    await fails(['policy', 'apply', join(h.dir, 'missing.yaml')], (e) => {
      assert.equal(e.code, 1);
      assert.match(e.stderr, /E_POLICY_FILE: cannot read .*missing\.yaml: ENOENT/);
    });
  });

  it('gets, sets and deletes one entry', async () => {
    const set = await cli(
      'policy',
      'set',
      'shaping',
      'slow',
      '{domain: slow.test, maxConnections: 2}',
    );
    assert.match(set.stdout, /^set shaping\.slow/);
    const got = parse((await cli('policy', 'get', 'shaping', 'slow')).stdout);
    assert.deepEqual(got, { domain: 'slow.test', maxConnections: 2 });
    await fails(['policy', 'set', 'shaping', 'slow', '{maxConnections: -1}'], (e) => {
      assert.match(e.stderr, /E_POLICY_INVALID: .*\n\s+shaping\.slow\.maxConnections: /);
    });
    await fails(['policy', 'set', 'shaping', 'slow', '{maxConnections: [}'], (e) => {
      assert.match(e.stderr, /E_BAD_YAML/);
    });
    assert.match((await cli('policy', 'delete', 'shaping', 'slow')).stdout, /deleted/);
    await fails(['policy', 'get', 'shaping', 'slow'], (e) => {
      assert.match(e.stderr, /E_NOT_FOUND: no entry "slow" in policy section shaping/);
    });
    await fails(['policy', 'get', 'shapes', 'slow'], (e) => {
      assert.match(e.stderr, /E_VALIDATION: section: .*queues, sources, pools/);
    });
  });

  it('pauses a queue, shows it paused, and resumes it', async () => {
    assert.match((await cli('queues', 'pause', 'bulk')).stdout, /^paused queue bulk \(since /);
    const list = (await cli('queues')).stdout;
    assert.match(list, /^bulk\s+paused\s+5 default\s+0\s+0\s+paused by an operator since /m);
    assert.match(list, /^default\s+idle\s+/m);
    const json = JSON.parse((await cli('queues', 'list', '--json')).stdout);
    assert.equal(json.queues.find((q: { name: string }) => q.name === 'bulk').state, 'paused');
    assert.match((await cli('pauses')).stdout, /^queue\s+bulk\s+since /m);
    assert.match((await cli('resume', 'queue', 'bulk')).stdout, /^resumed queue bulk/);
    assert.match((await cli('queues')).stdout, /^bulk\s+idle\s+/m);
    await fails(['queues', 'pause', 'nope'], (e) => {
      assert.equal(e.code, 1);
      assert.match(e.stderr, /^gridpost: E_UNKNOWN_QUEUE: no queue "nope"\n {2}fix: /);
    });
    await fails(['pause', 'planet', 'x'], (e) =>
      assert.match(e.stderr, /E_VALIDATION: unknown kind/),
    );
  });

  it('pauses a site and a source by name, and lists actions and ready queues', async () => {
    const site = 'mx1.example.test,mx2.example.test';
    assert.match((await cli('pause', 'site', site)).stdout, /^paused site mx1\.example\.test,mx2/);
    assert.match((await cli('pauses')).stdout, /^site\s+mx1\.example\.test,mx2\.example\.test /m);
    assert.match((await cli('resume', 'site', site)).stdout, /^resumed site /);
    assert.match((await cli('pause', 'source', 'default')).stdout, /^paused source default/);
    assert.match((await cli('resume', 'source', 'default')).stdout, /^resumed source default/);
    assert.match((await cli('actions')).stdout, /no action in force/);
    await fails(['actions', 'lift', 'nope'], (e) => assert.match(e.stderr, /E_NOT_FOUND/));
    assert.match((await cli('ready-queues')).stdout, /^source\s+site\s+state/);
  });

  it('refuses a purge with no selection, and counts what retry, purge and move touch', async () => {
    await fails(['purge'], (e) => {
      assert.equal(e.code, 1);
      assert.match(e.stderr, /E_VALIDATION: select something/);
    });
    assert.match((await cli('purge', '--domain', 'none.test')).stdout, /^purged 0 recipient/);
    assert.match((await cli('purge', '--all')).stdout, /^purged 0 recipient/);
    assert.match((await cli('retry', '--queue', 'bulk')).stdout, /^0 recipient\(s\) due now/);
    const move = await cli('move', '--queue', 'default', '--to-queue', 'bulk');
    assert.match(move.stdout, /^moved 0 recipient\(s\) to queue bulk/);
    await fails(['move', '--queue', 'default'], (e) => assert.match(e.stderr, /E_VALIDATION: to:/));
  });
});
