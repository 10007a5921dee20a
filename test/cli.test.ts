/**
 * The operator contract through the real CLI: `gridpost serve` says where it listens and makes
 * an API key; `status` and `trace` read a running engine; a bad config stops start-up with the
 * key named and exit code 78.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { TestWorld } from '../src/testworld/index.js';
import { CLI, kill9 } from './support/child-engine.js';
import { injectSmtp, simpleMessage, waitFor } from './support/harness.js';

const run = promisify(execFile);

describe('gridpost CLI', () => {
  let world: TestWorld;
  let dir: string;
  let child: ReturnType<typeof spawn>;
  let smtpPort = 0;
  let api = '';

  before(async () => {
    world = await TestWorld.start();
    await world.addProvider(['cli.test']);
    dir = mkdtempSync(join(tmpdir(), 'gridpost-cli-'));
    writeFileSync(
      join(dir, 'c.yaml'),
      `delivery:\n  port: ${world.smtpPort}\nlog:\n  level: warn\n`,
    );
    const args = ['serve', '--config', join(dir, 'c.yaml'), '--data', dir];
    child = spawn(
      process.execPath,
      [CLI, ...args, '--smtp', '127.0.0.1:0', '--http', '127.0.0.1:0'],
      {
        env: { ...process.env, GRIDPOST_DNS: world.dns.address },
      },
    );
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const m = await waitFor('the listening line', () =>
      /SMTP on 127\.0\.0\.1:(\d+), HTTP API on http:\/\/(127\.0\.0\.1:\d+)/.exec(out),
    );
    smtpPort = Number(m[1]);
    api = m[2]!;
  });
  after(async () => {
    if (child) await kill9(child);
    await world?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates an API key readable only by its owner', () => {
    assert.equal(statSync(join(dir, 'api-key')).mode & 0o777, 0o600);
  });

  it('shows status and traces a recipient through the API', async () => {
    const res = await injectSmtp(
      smtpPort,
      'a@sender.test',
      ['ann@cli.test'],
      simpleMessage('a@sender.test', 'ann@cli.test'),
    );
    const id = /queued as (\S+)/.exec(res.data?.text ?? '')![1]!;
    const common = ['--api', api, '--data', dir];
    await waitFor('delivery', async () => {
      const { stdout } = await run(process.execPath, [CLI, 'status', '--json', ...common]);
      return JSON.parse(stdout).counters.delivered === 1;
    });
    const status = await run(process.execPath, [CLI, 'status', ...common]);
    assert.match(status.stdout, /delivered\s+1/);
    assert.match(status.stdout, /default\s+idle\s+10 default\s+0/);
    for (const query of ['ann@cli.test', id, `${id}.1`]) {
      const trace = await run(process.execPath, [CLI, 'trace', query, ...common]);
      assert.match(trace.stdout, /Reception .*from=<a@sender\.test>/, query);
      const delivery = /Delivery .*<ann@cli\.test> attempt=1 source=default mx=mx\.cli\.test/;
      assert.match(trace.stdout, delivery, query);
    }
  });

  it('classifies a reply: category, class and rule', async () => {
    const common = ['--api', api, '--data', dir];
    const out = await run(process.execPath, [CLI, 'classify', '550 5.1.1 User unknown', ...common]);
    assert.equal(out.stdout.trim(), 'bad-mailbox hard (rule builtin:enhanced *.1.1)');
  });

  it('adds, lists and removes suppressed addresses', async () => {
    const common = ['--api', api, '--data', dir];
    const add = await run(process.execPath, [CLI, 'suppress', 'add', 'Zed@cli.test', ...common]);
    assert.match(add.stdout, /^zed@cli\.test {2}manual {2}api:/);
    const list = await run(process.execPath, [CLI, 'suppress', 'list', ...common]);
    assert.match(list.stdout, /zed@cli\.test/);
    await run(process.execPath, [CLI, 'suppress', 'remove', 'zed@cli.test', ...common]);
    const csv = await run(process.execPath, [CLI, 'suppress', 'export', ...common]);
    assert.equal(csv.stdout.trim(), 'address,reason,source,at');
  });

  it('says what is wrong when the engine is not found or the key is wrong', async () => {
    const wrongKey = run(process.execPath, [CLI, 'status', '--api', api, '--key', 'x'.repeat(20)]);
    await assert.rejects(wrongKey, (e: { stderr: string; code: number }) => {
      return /E_AUTH_INVALID/.test(e.stderr) && e.code === 1;
    });
  });

  it('says E_LISTEN when the SMTP address is taken', async () => {
    const other = mkdtempSync(join(tmpdir(), 'gridpost-cli-busy-'));
    const args = [
      'serve',
      '--data',
      other,
      '--smtp',
      `127.0.0.1:${smtpPort}`,
      '--http',
      '127.0.0.1:0',
    ];
    await assert.rejects(
      run(process.execPath, [CLI, ...args]),
      (e: { stderr: string; code: number }) => {
        return (
          e.code === 1 &&
          /E_LISTEN: cannot listen on 127\.0\.0\.1:\d+ \(smtp\.listen\)/.test(e.stderr)
        );
      },
    );
    rmSync(other, { recursive: true, force: true });
  });

  it('stops cleanly on SIGTERM, and a restart finds what was queued', async () => {
    const other = mkdtempSync(join(tmpdir(), 'gridpost-cli-term-'));
    writeFileSync(join(other, 'c.yaml'), `delivery:\n  port: ${world.smtpPort}\n`);
    const args = ['serve', '--config', join(other, 'c.yaml'), '--data', other];
    const listen = ['--smtp', '127.0.0.1:0', '--http', '127.0.0.1:0'];
    const start = async () => {
      const c = spawn(process.execPath, [CLI, ...args, ...listen], {
        env: { ...process.env, GRIDPOST_DNS: '127.0.0.1:9' }, // no DNS: everything defers
      });
      let out = '';
      c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      const m = await waitFor('listening', () => /SMTP on 127\.0\.0\.1:(\d+)/.exec(out));
      return { c, port: Number(m[1]), out: () => out };
    };
    const first = await start();
    const to = 'kept@nodns.test';
    const res = await injectSmtp(
      first.port,
      'a@sender.test',
      [to],
      simpleMessage('a@sender.test', to),
    );
    assert.equal(res.data?.code, 250);
    const exited = new Promise<number | null>((r) => first.c.once('exit', (code) => r(code)));
    first.c.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.match(first.out(), /engine stopped/);
    const second = await start();
    try {
      const { stdout } = await run(process.execPath, [
        CLI,
        'status',
        '--json',
        '--api',
        await apiOf(second.out()),
        '--data',
        other,
      ]);
      assert.equal(JSON.parse(stdout).queues[0].recipients, 1, 'the message is still queued');
    } finally {
      await kill9(second.c);
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('stops start-up on a bad config with the key path and exit code 78', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'delivery:\n  port: "twenty-five"\n');
    await assert.rejects(
      run(process.execPath, [CLI, 'serve', '--config', bad]),
      (e: { stderr: string; code: number }) => {
        return (
          e.code === 78 && /E_CONFIG_INVALID/.test(e.stderr) && /delivery\.port/.test(e.stderr)
        );
      },
    );
  });
});

/** The API address a `serve` printed. */
async function apiOf(out: string): Promise<string> {
  return (/HTTP API on http:\/\/(127\.0\.0\.1:\d+)/.exec(out) ?? [])[1] ?? '';
}
