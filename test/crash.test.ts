/**
 * Crash safety: under load, kill -9 the engine and start it again. Every message that got a
 * 250 must reach the receiver; duplicates are allowed only for deliveries in flight at the
 * moment of the kill, and their number is reported.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { TestWorld } from '../src/testworld/index.js';
import { kill9, spawnEngine, writeChildConfig } from './support/child-engine.js';
import { injectLoad } from './support/load.js';

const FROM = 'load@sender.test';

let world: TestWorld;
let dataDir: string;

before(async () => {
  world = await TestWorld.start();
  dataDir = mkdtempSync(join(tmpdir(), 'gridpost-crash-'));
});
after(async () => {
  await world?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

it('loses no acknowledged message across kill -9 and restart', { timeout: 90_000 }, async () => {
  const rx = await world.addProvider(['crash.test']);
  const { file, smtpPort } = await writeChildConfig(world, dataDir);
  const first = await spawnEngine(file, world);
  const stop = { now: false };
  const load = { port: smtpPort, sessions: 8, prefix: '', domain: 'crash.test', from: FROM };
  const clients = injectLoad(load, stop);
  await new Promise((r) => setTimeout(r, 1500));
  await kill9(first);
  stop.now = true;
  const acked = await clients;
  assert.ok(acked.length > 50, `enough load before the kill (${acked.length} acknowledged)`);
  const second = await spawnEngine(file, world);
  try {
    const want = new Set(acked);
    const deadline = Date.now() + 60_000;
    while ([...want].some((a) => !rx.recipients().includes(a)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
    }
    const got = rx.recipients();
    const missing = acked.filter((a) => !got.includes(a));
    assert.deepEqual(missing, [], `${missing.length} acknowledged messages lost`);
    const counts = new Map<string, number>();
    for (const a of got) counts.set(a, (counts.get(a) ?? 0) + 1);
    const duplicates = [...counts.values()].filter((n) => n > 1).length;
    console.log(`# crash: ${acked.length} acknowledged, all delivered, ${duplicates} duplicates`);
    // In-flight deliveries at the kill: at most one per open connection per transaction.
    assert.ok(duplicates <= 100, `${duplicates} duplicates is more than in flight`);
  } finally {
    await kill9(second);
  }
});
