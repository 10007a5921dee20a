/**
 * A full disk: the engine answers 452 4.3.1 (SMTP) and E_STORAGE (HTTP), queues nothing
 * half-way, keeps running, and once space is back it delivers everything it had accepted and
 * accepts mail again. The data directory is a small tmpfs mounted for the test (needs root).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { TestWorld, rejectAll, accept } from '../src/testworld/index.js';
import {
  api,
  injectSmtp,
  simpleMessage,
  startEngine,
  waitFor,
  type TestEngine,
} from './support/harness.js';

const mountPoint = mkdtempSync(join(tmpdir(), 'gridpost-full-'));
let mounted = false;
let world: TestWorld;
let t: TestEngine | undefined;

before(async () => {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=6m', 'tmpfs', mountPoint], {
      stdio: 'ignore',
    });
    mounted = true;
  } catch {
    mounted = false;
  }
  world = await TestWorld.start();
});
after(async () => {
  await t?.stop({ keepData: true });
  await world?.stop();
  if (mounted) execFileSync('umount', ['-l', mountPoint]);
  rmSync(mountPoint, { recursive: true, force: true });
});

it(
  'answers 452 on a full disk, loses nothing accepted, and recovers',
  { timeout: 60_000 },
  async (ctx) => {
    if (!mounted) {
      if (process.env.CI) assert.fail('cannot mount a tmpfs: the full-disk test needs root');
      ctx.skip('cannot mount a tmpfs (needs root)');
      return;
    }
    const rx = await world.addProvider(['full.test'], { script: rejectAll('451 4.3.0 later') });
    t = await startEngine(
      world,
      { policy: { queues: { default: { retry: ['1s'], jitter: 0, maxAge: '1h' } } } },
      mountPoint,
    );
    const filler = join(mountPoint, 'filler');
    writeFileSync(filler, Buffer.alloc(3 * 1024 * 1024));
    const body = simpleMessage('a@sender.test', 'x@full.test', 'fill', 'z'.repeat(60_000));
    const accepted: string[] = [];
    let refusal = '';
    for (let i = 0; i < 200 && !refusal; i++) {
      const to = `u${i}@full.test`;
      const res = await injectSmtp(t.smtpPort, 'a@sender.test', [to], body);
      if (res.data?.code === 250) accepted.push(to);
      else refusal = `${res.data?.code} ${res.data?.enhanced}`;
    }
    assert.equal(refusal, '452 4.3.1', 'the disk filled up and the client was told to retry');
    assert.ok(accepted.length > 0, 'some messages were accepted before');
    const http = await api(t, 'POST', '/api/v1/messages', {
      from: 'a@sender.test',
      to: 'y@full.test',
      text: 'z'.repeat(100_000),
    });
    assert.equal(http.status, 503);
    assert.equal(http.body.error.code, 'E_STORAGE');

    rmSync(filler);
    rx.setScript(accept());
    await waitFor(
      'every accepted message delivered',
      () => accepted.every((a) => rx.recipients().includes(a)),
      30_000,
    );
    const again = await injectSmtp(
      t.smtpPort,
      'a@sender.test',
      ['after@full.test'],
      simpleMessage('a@sender.test', 'after@full.test'),
    );
    assert.equal(again.data?.code, 250, 'accepts mail again once space is back');
  },
);
