/**
 * Crash safety under load (`npm run bench:crash`, from the repository root): K client sessions
 * of ours inject into an engine child process and note every recipient acknowledged with a 250.
 * After T seconds the engine is killed with SIGKILL and started again on the same data
 * directory, R times. Then every acknowledged recipient must reach the receiver: lost must be 0
 * (exit status 1 otherwise). Duplicates are allowed, since delivery is at least once, and are
 * reported next to the deliveries that were in flight at each kill.
 *
 *   node dist/bench/crash.js [--rounds 3] [--seconds 3] [--sessions 8] [--timeout 120]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import { TestWorld, type Receiver, type ReceiverScript } from '../src/testworld/index.js';
import { kill9, spawnEngine, writeChildConfig } from '../test/support/child-engine.js';
import { injectLoad } from '../test/support/load.js';

interface Options {
  rounds: number;
  seconds: number;
  sessions: number;
  /** Seconds to wait, after the last restart, for every acknowledged recipient. */
  timeout: number;
}

/** One kill: what was acknowledged in the round and what the receiver was in the middle of. */
interface Round {
  acked: string[];
  killedAt: number;
  /** Recipients in transactions open at the receiver at the kill. */
  inFlight: Set<string>;
  openTransactions: number;
}

const DOMAIN = 'crash.bench';
const SENDER = 'load@source.bench';
// How often the final wait looks at the receiver, in milliseconds.
const POLL_MS = 200;

/**
 * The recipients each receiver connection has in an open transaction: from MAIL until the end
 * of DATA. At a kill, these are the deliveries in flight.
 */
class FlightTracker {
  private readonly open = new Map<number, string[]>();

  /** The receiver script that keeps the table (it changes no reply). */
  script(): ReceiverScript {
    return {
      onMailFrom: (c) => void this.open.set(c.id, []),
      onRcptTo: (c, to) => void this.open.get(c.id)?.push(to),
      onMessage: (c) => void this.open.delete(c.id),
    };
  }

  /** The recipients in flight now, on connections still open; forgets closed ones. */
  snapshot(rx: Receiver): { recipients: Set<string>; transactions: number } {
    const live = new Set(rx.connections.filter((k) => k.closedAt === undefined).map((k) => k.id));
    const recipients = new Set<string>();
    let transactions = 0;
    for (const [id, to] of this.open) {
      if (!live.has(id)) {
        this.open.delete(id);
        continue;
      }
      transactions++;
      for (const address of to) recipients.add(address);
    }
    return { recipients, transactions };
  }
}

/** Injects for o.seconds, then kills the engine; returns the round's figures. */
async function loadAndKill(
  engine: ChildProcess,
  port: number,
  round: number,
  o: Options,
  ctx: { rx: Receiver; tracker: FlightTracker },
): Promise<Round> {
  const stop = { now: false };
  const load = { port, sessions: o.sessions, prefix: `r${round}`, domain: DOMAIN, from: SENDER };
  const clients = injectLoad(load, stop);
  await sleep(o.seconds * 1000);
  const flight = ctx.tracker.snapshot(ctx.rx);
  const killedAt = Date.now();
  await kill9(engine);
  stop.now = true;
  const acked = await clients;
  return {
    acked,
    killedAt,
    inFlight: flight.recipients,
    openTransactions: flight.transactions,
  };
}

/** How many times the receiver got each recipient. */
function receivedCounts(rx: Receiver): Map<string, number> {
  const counts = new Map<string, number>();
  for (const address of rx.recipients()) counts.set(address, (counts.get(address) ?? 0) + 1);
  return counts;
}

/** Polls until every acknowledged recipient has arrived or the timeout passes. */
async function waitDelivered(rx: Receiver, acked: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const got = receivedCounts(rx);
    if (acked.every((a) => got.has(a))) return;
    await sleep(POLL_MS);
  }
}

/** The final figures, from the rounds and what the receiver holds. */
function tally(rx: Receiver, rounds: Round[]) {
  const acked = rounds.flatMap((r) => r.acked);
  const counts = receivedCounts(rx);
  const lost = acked.filter((a) => !counts.has(a));
  const duplicated = [...counts].filter(([, n]) => n > 1).map(([a]) => a);
  const inFlight = new Set(rounds.flatMap((r) => [...r.inFlight]));
  const ackedSet = new Set(acked);
  return {
    acknowledged: acked.length,
    delivered: acked.length - lost.length,
    lost,
    duplicates: duplicated.length,
    duplicatesInFlight: duplicated.filter((a) => inFlight.has(a)).length,
    inFlight: rounds.reduce((sum, r) => sum + r.inFlight.size, 0),
    // The engine queued these, but the kill cut the 250 on its way to the client.
    unacknowledgedDelivered: [...counts.keys()].filter((a) => !ackedSet.has(a)).length,
    latestBeforeKill: latestBeforeKill(rx, duplicated, rounds),
  };
}

/**
 * For duplicates that were not in an open transaction at a kill: the longest time (ms) between
 * the receiver's first copy and the next kill. A small value means the 250 arrived just before
 * the kill, when the engine had not yet committed the Delivery outcome.
 */
function latestBeforeKill(rx: Receiver, duplicated: string[], rounds: Round[]): number {
  const wanted = new Set(duplicated.filter((a) => !rounds.some((r) => r.inFlight.has(a))));
  let worst = 0;
  const seen = new Set<string>();
  for (const m of rx.messages) {
    const address = m.to[0];
    if (address === undefined || !wanted.has(address) || seen.has(address)) continue;
    seen.add(address);
    const kill = rounds.find((r) => r.killedAt >= m.at)?.killedAt;
    if (kill !== undefined) worst = Math.max(worst, kill - m.at);
  }
  return worst;
}

/** The command line, validated. */
function options(): Options {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '3' },
      seconds: { type: 'string', default: '3' },
      sessions: { type: 'string', default: '8' },
      timeout: { type: 'string', default: '120' },
    },
  });
  const positive = (name: string, v: string) => {
    const n = Number(v);
    if (!(n > 0)) throw new Error(`--${name} wants a positive number`);
    return n;
  };
  return {
    rounds: Math.round(positive('rounds', values.rounds)),
    seconds: positive('seconds', values.seconds),
    sessions: Math.round(positive('sessions', values.sessions)),
    timeout: positive('timeout', values.timeout),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function printRound(n: number, r: Round, seconds: number): void {
  console.log(
    `round ${n}: ${r.acked.length} acknowledged in ${seconds} s, then kill -9 with ` +
      `${r.inFlight.size} recipient(s) in ${r.openTransactions} open transaction(s) ` +
      'at the receiver',
  );
}

/** The final figures, one per line. */
function printTally(t: ReturnType<typeof tally>, waitedMs: number): void {
  console.log(`\nacknowledged (250)        ${t.acknowledged}`);
  const waited = (waitedMs / 1000).toFixed(1);
  console.log(`delivered of those        ${t.delivered} (${waited} s after the last restart)`);
  console.log(`lost                      ${t.lost.length}`);
  console.log(`in flight at the kills    ${t.inFlight}`);
  console.log(`duplicates                ${t.duplicates}`);
  console.log(`  of which in flight      ${t.duplicatesInFlight}`);
  console.log(
    `  the others              ${t.duplicates - t.duplicatesInFlight} ` +
      `(accepted by the receiver at most ${t.latestBeforeKill} ms before a kill)`,
  );
  console.log(`delivered, 250 not seen   ${t.unacknowledgedDelivered}`);
  if (t.lost.length > 0) console.log(`LOST: ${t.lost.slice(0, 20).join(' ')}`);
}

async function main(): Promise<number> {
  const o = options();
  console.log(
    `crash bench: ${o.rounds} round(s) of ${o.seconds} s under ${o.sessions} client ` +
      `session(s), kill -9 and restart after each`,
  );
  const world = await TestWorld.start();
  const dataDir = mkdtempSync(join(tmpdir(), 'gridpost-crash-bench-'));
  let engine: ChildProcess | undefined;
  let keepData = false;
  try {
    const tracker = new FlightTracker();
    const rx = await world.addProvider([DOMAIN], { script: tracker.script() });
    const { file, smtpPort } = await writeChildConfig(world, dataDir);
    engine = await spawnEngine(file, world);
    const rounds: Round[] = [];
    for (let n = 1; n <= o.rounds; n++) {
      const round = await loadAndKill(engine, smtpPort, n, o, { rx, tracker });
      rounds.push(round);
      printRound(n, round, o.seconds);
      engine = await spawnEngine(file, world);
    }
    const started = Date.now();
    await waitDelivered(
      rx,
      rounds.flatMap((r) => r.acked),
      o.timeout * 1000,
    );
    const t = tally(rx, rounds);
    printTally(t, Date.now() - started);
    if (t.acknowledged === 0)
      console.log('FAILED: nothing was acknowledged, so nothing was tested');
    keepData = t.lost.length > 0;
    if (keepData) console.log(`the engine's data directory is kept: ${dataDir}`);
    return keepData || t.acknowledged === 0 ? 1 : 0;
  } finally {
    if (engine) await kill9(engine);
    await world.stop();
    if (!keepData) rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    console.error(`crash bench failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
