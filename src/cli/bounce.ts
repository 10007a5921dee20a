/**
 * `gridpost bounce parse FILE|-`: what the bounce listener would make of a message (a bounce,
 * a delay warning, a complaint, an auto-reply or nothing), printed as JSON. It runs locally:
 * no engine is needed.
 */
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { analyseMessage } from '../bounces/inbound/analyse.js';
import { GridpostError } from '../errors/catalogue.js';

/** Exit code for an input that cannot be read (as for a usage error). */
const EXIT_INPUT = 2;

/** Registers `bounce parse`. */
export function bounceCommands(program: Command): void {
  const bounce = program.command('bounce').description('inbound reports: bounces, complaints');
  bounce
    .command('parse <file>')
    .description('analyse a message (a file, or - for standard input) and print it as JSON')
    .action(parse);
}

async function parse(file: string): Promise<void> {
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
  const analysis = await analyseMessage(raw);
  process.stdout.write(`${JSON.stringify(analysis, null, 2)}\n`);
}

async function readInput(file: string): Promise<Buffer> {
  if (file !== '-') return readFile(file);
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
