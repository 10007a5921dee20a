/** WalSync: every sync() is covered by an fsync that started after it; fsyncs coalesce. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { WalSync, type FsyncFn } from '../src/spool/wal-sync.js';

it('coalesces syncs asked while one runs into exactly one more fsync', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gridpost-walsync-'));
  const wal = join(dir, 'x-wal');
  writeFileSync(wal, 'frames');
  const calls: ((err: null) => void)[] = [];
  const fsyncFn: FsyncFn = (_fd, done) => calls.push(done);
  const ws = new WalSync(wal, dir, fsyncFn);
  const order: string[] = [];
  const first = ws.sync().then(() => order.push('first'));
  const during = [ws.sync(), ws.sync(), ws.sync()].map((p, i) =>
    p.then(() => order.push(`during${i}`)),
  );
  await new Promise((r) => setImmediate(r));
  assert.equal(calls.length, 1, 'one fsync runs; the others wait');
  calls[0]!(null);
  await first;
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, ['first'], 'writes made during the first fsync are not yet acknowledged');
  assert.equal(calls.length, 2, 'one more fsync covers all of them');
  calls[1]!(null);
  await Promise.all(during);
  assert.deepEqual(order, ['first', 'during0', 'during1', 'during2']);
  const later = ws.sync();
  await new Promise((r) => setImmediate(r));
  assert.equal(calls.length, 3, 'a sync after all settled starts a new fsync');
  calls[2]!(null);
  await later;
  ws.close();
  rmSync(dir, { recursive: true, force: true });
});

it('rejects the writers of a failed fsync', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gridpost-walsync-'));
  writeFileSync(join(dir, 'x-wal'), 'frames');
  const eio = Object.assign(new Error('EIO'), { code: 'EIO' });
  const ws = new WalSync(join(dir, 'x-wal'), dir, (_fd, done) => done(eio));
  await assert.rejects(ws.sync(), /EIO/);
  ws.close();
  rmSync(dir, { recursive: true, force: true });
});
