/** The recorder: records stored with the spool, found by message and address, pruned by age. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { Journal } from '../src/records/journal.js';
import { Recorder } from '../src/records/recorder.js';
import type { GridpostRecord } from '../src/records/types.js';
import { openStore } from '../src/spool/store.js';

function rejected(at: string, recipient: string): GridpostRecord {
  const reply = { code: 554, enhanced: '5.7.1', text: 'Relay access denied' };
  return {
    type: 'Rejected',
    at,
    via: 'smtp',
    recipient,
    reason: 'relay-denied',
    reply,
    client: {},
  };
}

it('finds records by address (case-insensitive) and prunes those past retention', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gridpost-recorder-'));
  const db = openStore(dir);
  const journal = new Journal(join(dir, 'records'), 1 << 20);
  const recorder = new Recorder(db, journal);
  recorder.insert(rejected('2026-01-01T00:00:00Z', 'Old@Example.test'));
  recorder.insert(rejected('2026-12-01T00:00:00Z', 'old@example.test'));
  assert.equal(recorder.forRecipient('OLD@example.test').length, 2);
  const pruned = recorder.prune(Date.parse('2026-06-01T00:00:00Z'));
  assert.equal(pruned, 1);
  const left = recorder.forRecipient('old@example.test');
  assert.deepEqual(
    left.map((r) => r.at),
    ['2026-12-01T00:00:00Z'],
  );
  await journal.close();
  db.close();
  rmSync(dir, { recursive: true, force: true });
});
