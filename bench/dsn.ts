/**
 * Inbound reports analysed per second (`npm run bench:dsn`): every sample of
 * test/data/bounces/ (flufl.bounce and sisimai), analysed over and over on one thread for a
 * few seconds; then the same for the RFC 3464 subset alone (the reports with a
 * delivery-status part, the bulk of what a listener receives).
 *
 *   node dist/bench/dsn.js [--seconds 5]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { analyseMessage } from '../src/bounces/inbound/analyse.js';

const DIRS = ['test/data/bounces/flufl', 'test/data/bounces/sisimai'];

function corpus(): Buffer[] {
  return DIRS.flatMap((dir) =>
    readdirSync(dir)
      .filter((f) => /\.(txt|eml)$/.test(f))
      .map((f) => readFileSync(join(dir, f))),
  );
}

/** Messages analysed per second over `ms` milliseconds. */
async function rate(messages: Buffer[], ms: number): Promise<{ n: number; perSecond: number }> {
  let n = 0;
  const started = performance.now();
  while (performance.now() - started < ms) {
    for (const m of messages) await analyseMessage(m);
    n += messages.length;
  }
  return { n, perSecond: Math.round(n / ((performance.now() - started) / 1000)) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' } } });
  const ms = Number(values.seconds) * 1000;
  const all = corpus();
  const rfc3464: Buffer[] = [];
  for (const m of all) if ((await analyseMessage(m)).format === 'rfc3464') rfc3464.push(m);
  const overall = await rate(all, ms);
  const dsn = await rate(rfc3464, ms);
  console.log(`${all.length} real reports: ${overall.perSecond} analysed per second`);
  console.log(`${rfc3464.length} of them RFC 3464 DSNs: ${dsn.perSecond} per second`);
  console.log(
    JSON.stringify({
      reports: all.length,
      perSecond: overall.perSecond,
      rfc3464: rfc3464.length,
      rfc3464PerSecond: dsn.perSecond,
    }),
  );
}

await main();
