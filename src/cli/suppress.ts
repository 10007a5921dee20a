/** `gridpost suppress add|remove|list|import|export`: the suppression list. */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { GridpostError } from '../errors/catalogue.js';
import { apiGet, apiSend, type ClientOptions } from './client.js';

interface Entry {
  address: string;
  reason: string;
  source: string;
  at: string;
}

/** Registers the suppress commands. */
export function suppressCommands(program: Command, client: (cmd: Command) => Command): void {
  const s = program.command('suppress').description('the suppression list');
  client(s.command('add <address>').description('suppress an address'))
    .option('--reason <reason>', 'hard-bounce, complaint, unsubscribe or manual', 'manual')
    .action(async (address: string, o: ClientOptions & { reason: string }) => {
      const e = (await apiSend(o, 'PUT', path(address), { reason: o.reason })) as Entry;
      console.log(line(e));
    });
  client(s.command('remove <address>').description('take an address off the list')).action(
    async (address: string, o: ClientOptions) => {
      await apiSend(o, 'DELETE', path(address));
      console.log(`${address} removed`);
    },
  );
  client(s.command('list').description('suppressed addresses, in address order'))
    .option('--after <address>', 'start after this address', '')
    .option('--limit <n>', 'how many (1..1000)', '100')
    .option('--json', 'print the JSON document')
    .action(async (o: ClientOptions & { after: string; limit: string; json?: boolean }) => {
      const q = `?after=${encodeURIComponent(o.after)}&limit=${encodeURIComponent(o.limit)}`;
      const doc = (await apiGet(o, `/api/v1/suppressions${q}`)) as {
        total: number;
        suppressions: Entry[];
      };
      if (o.json) return console.log(JSON.stringify(doc, null, 2));
      for (const e of doc.suppressions) console.log(line(e));
      console.log(`(${doc.suppressions.length} shown of ${doc.total})`);
    });
  client(s.command('import <file>').description('import a CSV file (address[,reason])')).action(
    async (file: string, o: ClientOptions) => {
      const text = readCsv(file);
      const r = (await apiSend(o, 'POST', '/api/v1/suppressions/import', text, 'text/csv')) as {
        read: number;
        added: number;
        errors: { line: number; message: string }[];
      };
      for (const e of r.errors) console.error(`${file}:${e.line}: ${e.message}`);
      const refused = r.errors.length === 1 ? '1 line refused' : `${r.errors.length} lines refused`;
      console.log(`${r.added} added (${r.read} read, ${refused})`);
      if (r.errors.length) process.exitCode = 1;
    },
  );
  client(s.command('export').description('the whole list as CSV on stdout')).action(
    async (o: ClientOptions) => {
      process.stdout.write(String(await apiGet(o, '/api/v1/suppressions/export')));
    },
  );
}

function path(address: string): string {
  return `/api/v1/suppressions/${encodeURIComponent(address)}`;
}

function line(e: Entry): string {
  return `${e.address}  ${e.reason}  ${e.source}  ${e.at}`;
}

function readCsv(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new GridpostError('E_VALIDATION', `cannot read ${file}`, { path: 'file', cause: err });
  }
}
