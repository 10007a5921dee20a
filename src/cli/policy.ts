/**
 * `gridpost policy`: export the traffic policy as YAML or JSON, apply a file (or only check it
 * with --dry-run), and read, set or delete one entry of a section. The engine validates; a
 * file that cannot be read or parsed is refused here with E_POLICY_FILE before any call.
 */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { GridpostError } from '../errors/catalogue.js';
import { ApiError, apiGet, apiSend, type ClientOptions } from './client.js';

type AddClientOptions = (cmd: Command) => Command;

/** Registers `policy export|apply|get|set|delete`. */
export function policyCommands(program: Command, client: AddClientOptions): void {
  const policy = program.command('policy').description('the traffic policy: export, apply, edit');
  client(policy.command('export').description('print the policy document'))
    .option('--format <format>', 'yaml or json', 'yaml')
    .action(exportPolicy);
  client(policy.command('apply <file>').description('replace the policy with a YAML/JSON file'))
    .option('--dry-run', 'validate only; change nothing')
    .action(applyPolicy);
  client(policy.command('get <section> <name>').description('print one entry'))
    .option('--json', 'print JSON instead of YAML')
    .action(async (section: string, name: string, o: ClientOptions & { json?: boolean }) => {
      const entry = await apiGet(o, entryPath(section, name));
      process.stdout.write(o.json ? `${JSON.stringify(entry, null, 2)}\n` : stringify(entry));
    });
  client(policy.command('set <section> <name> <entry>').description('add or replace an entry'))
    .addHelpText(
      'after',
      `\nentry: YAML or JSON, e.g. '{ domain: example.net, maxConnections: 5 }'`,
    )
    .option('--dry-run', 'validate only; change nothing')
    .action(setEntry);
  client(policy.command('delete <section> <name>').description('delete one entry')).action(
    async (section: string, name: string, o: ClientOptions) => {
      await apiSend(o, 'DELETE', entryPath(section, name));
      console.log(`deleted ${section}.${name}`);
    },
  );
}

async function exportPolicy(o: ClientOptions & { format: string }): Promise<void> {
  if (o.format !== 'yaml' && o.format !== 'json') {
    throw new GridpostError('E_VALIDATION', `--format: "${o.format}"; give yaml or json`, {
      path: 'format',
    });
  }
  const doc = await apiGet(o, `/api/v1/policy?format=${o.format}`);
  process.stdout.write(o.format === 'yaml' ? String(doc) : `${JSON.stringify(doc, null, 2)}\n`);
}

async function applyPolicy(file: string, o: ClientOptions & { dryRun?: boolean }) {
  const doc = readPolicyFile(file);
  const query = o.dryRun ? '?dryRun=true' : '';
  try {
    await apiSend(o, 'PUT', `/api/v1/policy${query}`, doc);
  } catch (err) {
    if (err instanceof ApiError) {
      throw new ApiError(err.code, `${file}: ${err.message}`, err.fix, err.path);
    }
    throw err;
  }
  const counts = Object.entries(doc)
    .filter(([, v]) => v && typeof v === 'object')
    .map(([k, v]) => `${Object.keys(v as object).length} ${k}`);
  const what = counts.join(', ') || 'no entries';
  console.log(
    o.dryRun ? `${file} is valid (${what}); nothing changed` : `applied ${file}: ${what}`,
  );
}

/** Reads a YAML or JSON file (JSON is YAML too) holding a mapping of sections. */
export function readPolicyFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new GridpostError('E_POLICY_FILE', `cannot read ${file}: ${why}`, { cause: err });
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    const why = firstLine(err);
    throw new GridpostError('E_POLICY_FILE', `${file} is not valid YAML or JSON: ${why}`, {
      cause: err,
    });
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new GridpostError('E_POLICY_FILE', `${file}: expected a mapping of policy sections`);
  }
  return doc as Record<string, unknown>;
}

async function setEntry(
  section: string,
  name: string,
  text: string,
  o: ClientOptions & { dryRun?: boolean },
): Promise<void> {
  let entry: unknown;
  try {
    entry = parse(text);
  } catch (err) {
    const why = firstLine(err);
    throw new GridpostError('E_BAD_YAML', `the entry is not valid YAML or JSON: ${why}`);
  }
  const query = o.dryRun ? '?dryRun=true' : '';
  await apiSend(o, 'PUT', `${entryPath(section, name)}${query}`, entry ?? {});
  console.log(o.dryRun ? `${section}.${name} is valid; nothing changed` : `set ${section}.${name}`);
}

function entryPath(section: string, name: string): string {
  return `/api/v1/policy/${encodeURIComponent(section)}/${encodeURIComponent(name)}`;
}

/** The first line of a YAML parser error (the rest is a drawing of the spot). */
function firstLine(err: unknown): string {
  return err instanceof Error ? err.message.split('\n')[0]!.replace(/:$/, '') : String(err);
}
