#!/usr/bin/env node
/**
 * `npm run demo`: the test world with a few simulated providers, an engine, a few thousand
 * messages, progress while they go, and a summary per provider. Works without internet access.
 *
 *   npm run demo -- [--messages N] [--keep] [--time-limit SECONDS]
 */
import { parseArgs } from 'node:util';
import { runDemo, type DemoOptions } from './run.js';

const USAGE = `usage: npm run demo -- [options]
  --messages N          messages to inject, spread over the providers (default 3000)
  --keep                keep the data directory with the store and the accounting records
  --time-limit SECONDS  stop waiting for the queues to empty after this long (default 90)
  --help                this text`;

/** Reads the command line; throws with the usage on anything unknown or malformed. */
function options(argv: string[]): DemoOptions | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      messages: { type: 'string' },
      keep: { type: 'boolean', default: false },
      'time-limit': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return null;
  return {
    messages: positive('--messages', values.messages),
    timeLimitMs: seconds('--time-limit', values['time-limit']),
    keep: values.keep,
  };
}

function positive(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} wants a whole number above 0`);
  return n;
}

function seconds(flag: string, value: string | undefined): number | undefined {
  const n = positive(flag, value);
  return n === undefined ? undefined : n * 1000;
}

/** Runs the demo; exit status 0 once every recipient reached a final state, else 1. */
async function main(): Promise<number> {
  let opts: DemoOptions | null;
  try {
    opts = options(process.argv.slice(2));
  } catch (err) {
    console.error(`demo: ${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
    return 64; // EX_USAGE (sysexits.h)
  }
  if (!opts) {
    console.log(USAGE);
    return 0;
  }
  const result = await runDemo(opts);
  return result.timedOut ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error('demo failed:', err);
    process.exit(1);
  },
);
