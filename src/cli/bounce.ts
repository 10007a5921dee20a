/**
 * `gridpost bounce parse FILE|-`: what the bounce listener would make of a message (a bounce,
 * a delay warning, a complaint, an auto-reply or nothing), printed as JSON. It runs locally:
 * no engine is needed. With --policy, the installation's bounceRules of that policy file
 * classify before the shipped ones, as they do in the engine.
 */
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { Classifier } from '../bounces/classifier.js';
import { analyseMessage } from '../bounces/inbound/analyse.js';
import { GridpostError } from '../errors/catalogue.js';
import { validatePolicy } from '../shaping/policy-service.js';
import { readPolicyFile } from './policy.js';

/** Exit code for an input that cannot be read (as for a usage error). */
const EXIT_INPUT = 2;

/** Registers `bounce parse`. */
export function bounceCommands(program: Command): void {
  const bounce = program.command('bounce').description('inbound reports: bounces, complaints');
  bounce
    .command('parse <file>')
    .description('analyse a message (a file, or - for standard input) and print it as JSON')
    .option('--policy <file>', "classify with this policy file's bounceRules first (YAML/JSON)")
    .action(parse);
}

async function parse(file: string, o: { policy?: string }): Promise<void> {
  // A bad policy file throws E_POLICY_FILE / E_POLICY_INVALID, which main reports.
  const classifier = o.policy ? classifierOf(o.policy) : undefined;
  let raw: Buffer;
  try {
    raw = await readInput(file);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    const e = new GridpostError('E_INPUT_FILE', `cannot read ${file}: ${why}`, { cause: err });
    console.error(`gridpost: ${e.code}: ${e.message}\n  fix: ${e.fix}`);
    process.exitCode = EXIT_INPUT;
    return;
  }
  const analysis = await analyseMessage(raw, classifier);
  process.stdout.write(`${JSON.stringify(analysis, null, 2)}\n`);
}

/** The classifier of a policy file: its bounceRules, then the shipped ones. */
function classifierOf(file: string): Classifier {
  const doc = validatePolicy(readPolicyFile(file), file);
  return new Classifier(Object.entries(doc.bounceRules).map(([name, r]) => ({ name, ...r })));
}

async function readInput(file: string): Promise<Buffer> {
  if (file !== '-') return readFile(file);
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
