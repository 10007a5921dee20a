/**
 * `gridpost maildomains`, `gridpost keys` and `gridpost accounts`: sending domains, their
 * domain keys (DKIM) and certified accounts (S/MIME), through the engine's API.
 */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { GridpostError } from '../errors/catalogue.js';
import type { AccountView, KeyView, MaildomainView } from '../maildomains/maildomains.js';
import type { ComplianceReport } from '../maildomains/compliance.js';
import type { DnsStatus } from '../maildomains/watch.js';
import { apiGet, apiSend, type ClientOptions } from './client.js';

type Json = ClientOptions & { json?: boolean };
const enc = encodeURIComponent;
const mdPath = (d: string) => `/api/v1/maildomains/${enc(d)}`;
const keyPath = (d: string, s: string) => `${mdPath(d)}/keys/${enc(s)}`;

/** Registers the maildomain, key and account commands. */
export function maildomainCommands(program: Command, client: (cmd: Command) => Command): void {
  const md = program.command('maildomains').description('sending domains: DNS, keys, queue');
  client(md.command('list').description('every maildomain'))
    .option('--json', 'print the JSON document')
    .action(async (o: Json) => {
      const doc = (await apiGet(o, '/api/v1/maildomains')) as { maildomains: MaildomainView[] };
      if (o.json) return print(doc);
      for (const m of doc.maildomains) console.log(domainLine(m));
    });
  client(md.command('show <domain>').description('one maildomain with its keys and accounts'))
    .option('--json', 'print the JSON document')
    .action(async (domain: string, o: Json) => {
      const m = (await apiGet(o, mdPath(domain))) as MaildomainView;
      if (o.json) return print(m);
      showDomain(m);
    });
  client(md.command('add <domain>').description('add a maildomain, or change its settings'))
    .option('--queue <name>', 'its default queue')
    .option('--return-path <domain>', 'its envelope-sender (bounce) domain')
    .option('--signing-domain <domain>', 'sign with the keys of this maildomain instead')
    .option('--canonicalization <c>', 'relaxed/relaxed (default), simple/simple, ...')
    .action(async (domain: string, o: ClientOptions & Record<string, string | undefined>) => {
      const body = {
        ...(o.queue !== undefined ? { defaultQueue: o.queue } : {}),
        ...(o.returnPath !== undefined ? { returnPathDomain: o.returnPath } : {}),
        ...(o.signingDomain !== undefined ? { signingDomain: o.signingDomain } : {}),
        ...(o.canonicalization !== undefined ? { canonicalization: o.canonicalization } : {}),
      };
      showDomain((await apiSend(o, 'PUT', mdPath(domain), body)) as MaildomainView);
    });
  client(
    md.command('remove <domain>').description('delete a maildomain, its keys and accounts'),
  ).action(async (domain: string, o: ClientOptions) => {
    await apiSend(o, 'DELETE', mdPath(domain));
    console.log(`${domain} removed`);
  });
  client(md.command('dns <domain>').description('look up the DNS records it needs, now'))
    .option('--json', 'print the JSON document')
    .action(async (domain: string, o: Json) => {
      const s = (await apiGet(o, `${mdPath(domain)}/dns`)) as DnsStatus;
      if (o.json) return print(s);
      console.log(`${s.domain}: ${s.status} (looked up ${s.checkedAt})`);
      for (const r of s.records) {
        console.log(`  ${r.status.padEnd(7)} ${r.kind.padEnd(11)} ${r.name}  ${r.detail}`);
        if (r.fix) console.log(`          fix: ${r.fix}`);
      }
      if (s.status !== 'ok') process.exitCode = 1;
    });
  client(md.command('compliance <domain>').description('Gmail/Yahoo/Microsoft bulk-sender report'))
    .option('--json', 'print the JSON document')
    .action(async (domain: string, o: Json) => {
      const r = (await apiGet(o, `${mdPath(domain)}/compliance`)) as ComplianceReport;
      if (o.json) return print(r);
      console.log(`${r.domain}: ${r.compliant ? 'compliant' : 'NOT compliant'}`);
      for (const i of r.items) {
        console.log(`  ${i.status.padEnd(7)} ${i.requirement}: ${i.detail}`);
        if (i.fix && i.status !== 'pass') console.log(`          fix: ${i.fix}`);
      }
      if (!r.compliant) process.exitCode = 1;
    });
  keyCommands(program, client);
  accountCommands(program, client);
}

function keyCommands(program: Command, client: (cmd: Command) => Command): void {
  const k = program.command('keys').description('domain keys (DKIM) of maildomains');
  client(k.command('list <domain>').description('the keys of a maildomain'))
    .option('--json', 'print the JSON document')
    .action(async (domain: string, o: Json) => {
      const doc = (await apiGet(o, `${mdPath(domain)}/keys`)) as { keys: KeyView[] };
      if (o.json) return print(doc);
      for (const key of doc.keys) console.log(keyLine(key));
    });
  client(k.command('generate <domain>').description('a new key, pending until DNS shows it'))
    .requiredOption('--selector <s>', 'its selector, e.g. s2026')
    .option('--algorithm <a>', 'rsa or ed25519', 'rsa')
    .option('--bits <n>', 'RSA size: 2048 (default), 1024 (weak), 4096')
    .option('--json', 'print the JSON document')
    .action(
      async (domain: string, o: Json & { selector: string; algorithm: string; bits?: string }) => {
        const body = { selector: o.selector, algorithm: o.algorithm, ...bits(o.bits) };
        showKey((await apiSend(o, 'POST', `${mdPath(domain)}/keys`, body)) as KeyView, o.json);
      },
    );
  client(k.command('import <domain> <file>').description('import a PEM private key'))
    .requiredOption('--selector <s>', 'its selector')
    .option('--json', 'print the JSON document')
    .action(async (domain: string, file: string, o: Json & { selector: string }) => {
      const body = { selector: o.selector, privateKey: readText(file) };
      showKey((await apiSend(o, 'POST', `${mdPath(domain)}/keys`, body)) as KeyView, o.json);
    });
  for (const [verb, what] of [
    ['check', 'look the key up in DNS now (a pending key DNS shows starts signing)'],
    ['retire', 'stop the key signing; it stays valid for the grace period'],
  ] as const) {
    client(k.command(`${verb} <domain> <selector>`).description(what))
      .option('--json', 'print the JSON document')
      .action(async (domain: string, selector: string, o: Json) => {
        showKey(
          (await apiSend(o, 'POST', `${keyPath(domain, selector)}/${verb}`)) as KeyView,
          o.json,
        );
      });
  }
  client(k.command('activate <domain> <selector>').description('activate a pending key'))
    .option('--force', 'even though DNS does not show it yet')
    .option('--json', 'print the JSON document')
    .action(async (domain: string, selector: string, o: Json & { force?: boolean }) => {
      const path = `${keyPath(domain, selector)}/activate`;
      showKey((await apiSend(o, 'POST', path, { force: o.force === true })) as KeyView, o.json);
    });
  client(
    k.command('delete <domain> <selector>').description('delete a pending or retired key'),
  ).action(async (domain: string, selector: string, o: ClientOptions) => {
    await apiSend(o, 'DELETE', keyPath(domain, selector));
    console.log(`${selector}._domainkey.${domain} deleted`);
  });
}

function accountCommands(program: Command, client: (cmd: Command) => Command): void {
  const a = program.command('accounts').description('certified accounts (S/MIME signing)');
  client(a.command('add <address>').description('certify a sender address'))
    .option('--cert <file>', 'PEM certificate (and chain); the key may be in it too')
    .option('--key-file <file>', 'PEM private key, when not in --cert')
    .option('--p12 <file>', 'PKCS#12 file instead of PEM')
    .option('--password <p>', 'the PKCS#12 password', '')
    .action(async (address: string, o: ClientOptions & Record<string, string | undefined>) => {
      const body = o.p12
        ? { pkcs12: readFileOrFail(o.p12).toString('base64'), password: o.password }
        : {
            pem: [o.cert, o.keyFile]
              .filter(Boolean)
              .map((f) => readText(f!))
              .join('\n'),
          };
      const acc = (await apiSend(
        o,
        'PUT',
        `/api/v1/accounts/${enc(address)}`,
        body,
      )) as AccountView;
      console.log(accountLine(acc));
    });
  client(a.command('list <domain>').description('the certified accounts of a maildomain'))
    .option('--json', 'print the JSON document')
    .action(async (domain: string, o: Json) => {
      const doc = (await apiGet(o, `${mdPath(domain)}/accounts`)) as { accounts: AccountView[] };
      if (o.json) return print(doc);
      for (const acc of doc.accounts) console.log(accountLine(acc));
    });
  client(a.command('remove <address>').description('remove a certified account')).action(
    async (address: string, o: ClientOptions) => {
      await apiSend(o, 'DELETE', `/api/v1/accounts/${enc(address)}`);
      console.log(`${address} removed`);
    },
  );
}

function showDomain(m: MaildomainView): void {
  console.log(domainLine(m));
  for (const k of m.keys) console.log(`  key     ${keyLine(k)}`);
  for (const a of m.accounts) console.log(`  account ${accountLine(a)}`);
  for (const w of m.warnings) console.log(`  warning ${w}`);
}

function domainLine(m: MaildomainView): string {
  const signing = m.signing.selectors.length
    ? `signs as ${m.signing.domain} (${m.signing.selectors.join(', ')})`
    : 'not signing';
  const queue = m.defaultQueue ? ` queue=${m.defaultQueue}` : '';
  const rp = m.returnPathDomain ? ` return-path=${m.returnPathDomain}` : '';
  return `${m.domain}${queue}${rp} ${signing}`;
}

function keyLine(k: KeyView): string {
  const since = k.retireAt
    ? ` until ${k.retireAt}`
    : k.activatedAt
      ? ` since ${k.activatedAt}`
      : '';
  const dns = k.published ? 'in DNS' : 'not seen in DNS';
  return `${k.selector} ${k.algorithm} ${k.bits} bits ${k.state}${since} (${dns})`;
}

function showKey(k: KeyView, json?: boolean): void {
  if (json) return print(k);
  console.log(keyLine(k));
  console.log(`publish: ${k.dns.name} TXT ${k.dns.strings.map((s) => `"${s}"`).join(' ')}`);
  for (const w of k.warnings) console.log(`warning: ${w}`);
}

function accountLine(a: AccountView): string {
  const warn = a.warning ? ` (${a.warning})` : '';
  return `${a.address} ${a.state} until ${a.notAfter} issuer="${a.issuer}"${warn}`;
}

function bits(v: string | undefined): { bits?: number } {
  return v === undefined ? {} : { bits: Number(v) };
}

function print(doc: unknown): void {
  console.log(JSON.stringify(doc, null, 2));
}

function readText(file: string): string {
  return readFileOrFail(file).toString('utf8');
}

function readFileOrFail(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new GridpostError('E_INPUT_FILE', `cannot read ${file}: ${why}`, { cause: err });
  }
}
