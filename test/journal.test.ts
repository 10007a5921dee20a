/** Accounting files: one JSON line per record, rotated every hour and at the size limit. */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { Journal } from '../src/records/journal.js';
import type { StoredRecord } from '../src/records/types.js';

function record(seq: number): StoredRecord {
  const reply = { code: 550, enhanced: '5.7.1', text: 'Relay access denied' };
  const at = new Date(0).toISOString();
  return { seq, type: 'Rejected', at, via: 'smtp', reason: 'relay-denied', reply, client: {} };
}

it('writes JSON lines and rotates by hour and by size', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gridpost-journal-'));
  let now = Date.parse('2026-12-03T10:59:00Z');
  const journal = new Journal(dir, 200, () => now);
  journal.append([record(1), record(2)]);
  journal.flush();
  journal.append([record(3)]);
  journal.flush(); // over 200 bytes: a second part for the same hour
  now = Date.parse('2026-12-03T11:00:01Z');
  journal.append([record(4)]);
  journal.flush();
  await journal.close();
  const files = readdirSync(dir).sort();
  assert.deepEqual(files, [
    'records-2026120310-1.jsonl',
    'records-2026120310.jsonl',
    'records-2026120311.jsonl',
  ]);
  const lines = files.flatMap((f) => readFileSync(join(dir, f), 'utf8').trim().split('\n'));
  const seqs = lines.map((l) => (JSON.parse(l) as StoredRecord).seq).sort();
  assert.deepEqual(seqs, [1, 2, 3, 4]);
  rmSync(dir, { recursive: true, force: true });
});
