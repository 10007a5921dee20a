/**
 * The DNS status of a maildomain, looked up live from real DNS servers: the test world's,
 * with zones where each record is ok, missing, wrong or failing, and Debian's dnsmasq, a
 * server nobody here wrote.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { createDnsLookup, type DnsLookup } from '../src/delivery/dns.js';
import { GridpostError } from '../src/errors/catalogue.js';
import {
  checkDns,
  type DnsExpectation,
  type DnsRecordStatus,
  type DnsSourceExpectation,
} from '../src/maildomains/dns-status.js';
import { TestDnsServer, reverseName, type ZoneRecords } from '../src/testworld/dns-server.js';

let dns: TestDnsServer;

before(async () => {
  dns = await TestDnsServer.start();
});
after(async () => {
  await dns.stop();
});

/** Lookups against the test world's server; one try, so a SERVFAIL answers at once. */
function lookup(server = dns.address): DnsLookup {
  return createDnsLookup({ servers: [server], timeoutMs: 1_000, tries: 1 });
}

function zone(records: Record<string, ZoneRecords>): void {
  for (const [name, r] of Object.entries(records)) dns.set(name, r);
}

/** The public key part of a fresh key pair, as a DKIM record (RFC 6376 §3.6.1, RFC 8463). */
function dkimRecord(type: 'rsa' | 'ed25519'): string {
  const { publicKey } =
    type === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ed25519');
  const der = publicKey.export({ type: 'spki', format: 'der' });
  // Ed25519 keys are published raw: the last 32 bytes of the SPKI structure.
  const p = (type === 'rsa' ? der : der.subarray(-32)).toString('base64');
  return `v=DKIM1; k=${type}; p=${p}`;
}

const RSA = dkimRecord('rsa');
const RSA_OTHER = dkimRecord('rsa');
const ED = dkimRecord('ed25519');
const RSA_P = RSA.slice(RSA.indexOf('p=') + 2);

function source(name: string, address: string, helo = `${name}.out.test`): DnsSourceExpectation {
  return { name, address, helo };
}

/** What one case wants of its row: exact strings, or patterns for the longer texts. */
interface Want {
  status: DnsRecordStatus['status'];
  name?: string;
  expected?: string;
  found?: string[];
  detail?: string | RegExp;
  fix?: string | RegExp;
}

interface Case {
  name: string;
  zone: Record<string, ZoneRecords>;
  exp: Partial<DnsExpectation> & { domain: string };
  want: Want;
}

function check(got: DnsRecordStatus | undefined, want: Want): void {
  assert.ok(got, 'no row of that kind');
  const text = JSON.stringify(got, null, 1);
  assert.equal(got.status, want.status, text);
  if (want.name !== undefined) assert.equal(got.name, want.name, text);
  if (want.expected !== undefined) assert.equal(got.expected, want.expected, text);
  if (want.found !== undefined) assert.deepEqual(got.found, want.found, text);
  for (const key of ['detail', 'fix'] as const) {
    const w = want[key];
    if (typeof w === 'string') assert.equal(got[key], w, text);
    else if (w) assert.match(got[key], w, text);
  }
  if (got.status === 'ok') assert.equal(got.fix, '', 'an ok row needs no fix');
  else assert.notEqual(got.fix, '', 'every row that is not ok says what to do');
}

/** Runs a table of cases and checks the first row of the given kind in each. */
function runCases(kind: DnsRecordStatus['kind'], cases: Case[]): void {
  for (const c of cases) {
    it(c.name, async () => {
      zone(c.zone);
      const rows = await checkDns({ keys: [], sources: [], ...c.exp }, lookup());
      check(
        rows.find((r) => r.kind === kind),
        c.want,
      );
    });
  }
}

/** "v=spf1 include:i1.<d> ... include:i<n>.<d> ip4:192.0.2.7 -all" and its n included records. */
function includes(domain: string, n: number): Record<string, ZoneRecords> {
  const names = Array.from({ length: n }, (_, i) => `i${i + 1}.${domain}`);
  const z: Record<string, ZoneRecords> = {
    [domain]: { txt: [`v=spf1 ${names.map((x) => `include:${x}`).join(' ')} ip4:192.0.2.7 -all`] },
  };
  for (const x of names) z[x] = { txt: ['v=spf1 -all'] };
  return z;
}

const CHAIN: Record<string, ZoneRecords> = {
  'spf-chain.test': { txt: ['v=spf1 include:_a.spf-chain.test redirect=_r.spf-chain.test'] },
  '_a.spf-chain.test': { txt: ['v=spf1 ip4:192.0.2.7 -all'] },
  '_r.spf-chain.test': { txt: ['v=spf1 include:_b.spf-chain.test ~all'] },
  '_b.spf-chain.test': { txt: ['v=spf1 ip6:2001:db8:7::/48 ip4:198.51.100.8 -all'] },
};

describe('SPF: every egress address must pass check_host() at the return-path domain', () => {
  runCases('spf', [
    {
      name: 'an ip4 CIDR range covers the source',
      zone: { 'spf-cidr.test': { txt: ['v=spf1 ip4:192.0.2.0/24 -all'] } },
      exp: { domain: 'spf-cidr.test', sources: [source('a', '192.0.2.7')] },
      want: {
        status: 'ok',
        name: 'spf-cidr.test',
        expected: 'v=spf1 ip4:192.0.2.0/24 -all',
        found: ['v=spf1 ip4:192.0.2.0/24 -all'],
        detail: 'Every egress address passes: 192.0.2.7 (a).',
      },
    },
    {
      name: 'include: and redirect= chains cover an IPv4, a redirected and an IPv6 source',
      zone: CHAIN,
      exp: {
        domain: 'spf-chain.test',
        sources: [
          source('a', '192.0.2.7'),
          source('b', '198.51.100.8'),
          source('c', '2001:db8:7::25'),
        ],
      },
      want: {
        status: 'ok',
        detail: /192\.0\.2\.7 \(a\), 198\.51\.100\.8 \(b\), 2001:db8:7::25 \(c\)/,
      },
    },
    {
      name: 'the chain covers one source but not another',
      zone: CHAIN,
      exp: {
        domain: 'spf-chain.test',
        sources: [source('a', '192.0.2.7'), source('d', '203.0.113.9')],
      },
      want: {
        status: 'wrong',
        expected: 'v=spf1 ip4:203.0.113.9 include:_a.spf-chain.test redirect=_r.spf-chain.test',
        detail: '203.0.113.9 (d) gets softfail; 1 of 2 egress addresses pass.',
        fix:
          'Add ip4:203.0.113.9 to the SPF record at spf-chain.test: ' +
          '"v=spf1 ip4:203.0.113.9 include:_a.spf-chain.test redirect=_r.spf-chain.test".',
      },
    },
    {
      name: 'a:, mx/24 and exists: with a macro',
      zone: {
        'spf-mech.test': {
          txt: ['v=spf1 a:out.spf-mech.test mx/24 exists:%{i}.ok.spf-mech.test -all'],
          mx: [{ exchange: 'mx.spf-mech.test', priority: 10 }],
        },
        'out.spf-mech.test': { a: ['192.0.2.50'] },
        'mx.spf-mech.test': { a: ['198.51.100.1'] },
        '192.0.2.66.ok.spf-mech.test': { a: ['127.0.0.2'] },
      },
      exp: {
        domain: 'spf-mech.test',
        sources: [
          source('a', '192.0.2.50'),
          source('m', '198.51.100.77'),
          source('e', '192.0.2.66'),
        ],
      },
      want: { status: 'ok' },
    },
    {
      name: 'an address outside every mechanism gets fail under -all',
      zone: { 'spf-fail.test': { txt: ['v=spf1 ip4:192.0.2.1 -all'] } },
      exp: { domain: 'spf-fail.test', sources: [source('x', '192.0.2.99')] },
      want: {
        status: 'wrong',
        detail: '192.0.2.99 (x) gets fail; 0 of 1 egress addresses pass.',
        fix: /^Add ip4:192\.0\.2\.99 to the SPF record at spf-fail\.test: /,
      },
    },
    {
      name: 'no match and no all term gives neutral',
      zone: { 'spf-neutral.test': { txt: ['v=spf1 ip4:192.0.2.1'] } },
      exp: { domain: 'spf-neutral.test', sources: [source('x', '192.0.2.2')] },
      want: { status: 'wrong', detail: /192\.0\.2\.2 \(x\) gets neutral/ },
    },
    {
      name: 'an IPv6 source under an IPv4-only record: the fix adds ip6:',
      zone: { 'spf-v6.test': { txt: ['v=spf1 ip4:192.0.2.7 ~all'] } },
      exp: {
        domain: 'spf-v6.test',
        sources: [source('a', '192.0.2.7'), source('six', '2001:db8::7')],
      },
      want: {
        status: 'wrong',
        expected: 'v=spf1 ip6:2001:db8::7 ip4:192.0.2.7 ~all',
        detail: '2001:db8::7 (six) gets softfail; 1 of 2 egress addresses pass.',
        fix: /^Add ip6:2001:db8::7 to the SPF record at spf-v6\.test/,
      },
    },
    {
      name: 'ten includes are within the limit',
      zone: includes('spf-ten.test', 10),
      exp: { domain: 'spf-ten.test', sources: [source('a', '192.0.2.7')] },
      want: { status: 'ok' },
    },
    {
      name: 'eleven includes exceed the 10-lookup limit (RFC 7208 §4.6.4)',
      zone: includes('spf-many.test', 11),
      exp: { domain: 'spf-many.test', sources: [source('a', '192.0.2.7')] },
      want: {
        status: 'wrong',
        detail:
          /takes more than 10 DNS lookups \(RFC 7208 §4\.6\.4\), so receivers return permerror/,
        fix: /^Cut the terms that cost a lookup .* to 10 at most/,
      },
    },
    {
      name: 'two SPF records are a permerror (RFC 7208 §4.5)',
      zone: {
        'spf-two.test': {
          txt: ['v=spf1 ip4:192.0.2.7 -all', 'google-site-verification=abc', 'v=spf1 mx ~all'],
        },
      },
      exp: { domain: 'spf-two.test', sources: [source('a', '192.0.2.7')] },
      want: {
        status: 'wrong',
        found: ['v=spf1 ip4:192.0.2.7 -all', 'v=spf1 mx ~all'],
        detail:
          /^2 TXT records at spf-two\.test start with v=spf1; receivers then return permerror/,
        fix: 'Merge the 2 v=spf1 records at spf-two.test into one; delete the others.',
      },
    },
    {
      name: 'other TXT records but no SPF record',
      zone: { 'spf-none.test': { txt: ['google-site-verification=abc'] } },
      exp: {
        domain: 'spf-none.test',
        sources: [source('a', '192.0.2.7'), source('b', '2001:db8::8')],
      },
      want: {
        status: 'missing',
        expected: 'v=spf1 ip4:192.0.2.7 ip6:2001:db8::8 ~all',
        found: [],
        detail: /none of the 1 TXT records at spf-none\.test starts with v=spf1/,
        fix: 'Publish TXT "v=spf1 ip4:192.0.2.7 ip6:2001:db8::8 ~all" at spf-none.test.',
      },
    },
    {
      name: 'a domain that does not exist has no SPF record',
      zone: {},
      exp: { domain: 'spf-nx.test', sources: [source('a', '192.0.2.7')] },
      want: { status: 'missing', detail: /spf-nx\.test has no TXT record/ },
    },
    {
      name: 'with no egress address known, the fix asks for the addresses, not "v=spf1 ~all"',
      zone: {},
      exp: { domain: 'spf-nosrc.test', sources: [] },
      want: {
        status: 'missing',
        expected: 'v=spf1 ip4:EGRESS-ADDRESS ~all',
        fix: /ip4:\/ip6: term for every address the engine sends from; give those addresses/,
      },
    },
    {
      name: 'SERVFAIL at the domain is an error, not missing',
      zone: { 'spf-sf.test': { servfail: true } },
      exp: { domain: 'spf-sf.test', sources: [source('a', '192.0.2.7')] },
      want: {
        status: 'error',
        detail: /server failure \(ESERVFAIL\) looking up TXT of spf-sf\.test/,
        fix: /^Check again later/,
      },
    },
    {
      name: 'SERVFAIL inside an include is an error, not a fail',
      zone: {
        'spf-incsf.test': { txt: ['v=spf1 include:_sf.spf-incsf.test -all'] },
        '_sf.spf-incsf.test': { servfail: true },
      },
      exp: { domain: 'spf-incsf.test', sources: [source('a', '192.0.2.7')] },
      want: {
        status: 'error',
        found: ['v=spf1 include:_sf.spf-incsf.test -all'],
        detail: /server failure \(ESERVFAIL\) looking up TXT of _sf\.spf-incsf\.test/,
      },
    },
    {
      name: 'an include of a domain without SPF is a permerror',
      zone: {
        'spf-incnone.test': { txt: ['v=spf1 include:_none.spf-incnone.test -all'] },
        '_none.spf-incnone.test': {},
      },
      exp: { domain: 'spf-incnone.test', sources: [source('a', '192.0.2.7')] },
      want: { status: 'wrong', detail: /^Receivers return permerror for 192\.0\.2\.7/ },
    },
  ]);

  it('is checked at the return-path domain, not at the From domain', async () => {
    zone({
      'rpspf.test': { txt: ['v=spf1 -all'] },
      'bounces.rpspf.test': { txt: ['v=spf1 ip4:192.0.2.7 -all'] },
    });
    const exp = { domain: 'rpspf.test', returnPathDomain: 'bounces.rpspf.test', keys: [] };
    const rows = await checkDns({ ...exp, sources: [source('a', '192.0.2.7')] }, lookup());
    check(rows[0], { status: 'ok', name: 'bounces.rpspf.test' });
  });

  it('a server slower than the deadline gives error (timeout) within the deadline', async () => {
    zone({ 'spf-slow.test': { txt: ['v=spf1 ip4:192.0.2.7 -all'], delayMs: 3_000 } });
    const started = Date.now();
    const exp = { domain: 'spf-slow.test', keys: [], sources: [source('a', '192.0.2.7')] };
    const rows = await checkDns(exp, lookup(), { timeoutMs: 300 });
    const elapsed = Date.now() - started;
    check(rows[0], { status: 'error', detail: /timeout \(ETIMEOUT\) looking up TXT/ });
    assert.ok(elapsed < 1_500, `took ${elapsed} ms for a 300 ms deadline`);
  });
});

describe('DKIM: the TXT record at <selector>._domainkey.<domain> holds our key', () => {
  const key = (selector: string, record = RSA, state = 'active') => ({
    selector,
    algorithm: record.includes('k=ed25519') ? ('ed25519-sha256' as const) : ('rsa-sha256' as const),
    record,
    state,
  });
  const at = (selector: string, txt: string[] | undefined, servfail = false) => ({
    [`${selector}._domainkey.dkim.test`]: servfail ? { servfail } : { txt },
  });

  it('the test zone serves a 2048-bit record as two strings', async () => {
    zone(at('split', [RSA]));
    const strings = await lookup().resolveTxt('split._domainkey.dkim.test');
    assert.equal(strings.length, 1);
    assert.equal(strings[0]?.length, 2, 'one record of two strings');
  });

  runCases('dkim', [
    {
      name: 'a 2048-bit key split into two strings matches',
      zone: at('split', [RSA]),
      exp: { domain: 'dkim.test', keys: [key('split')] },
      want: {
        status: 'ok',
        name: 'split._domainkey.dkim.test',
        found: [RSA],
        detail: 'p= and k= match.',
      },
    },
    {
      name: 'tags in another order, folded base64 and spaces still match',
      zone: at('order', [`k = rsa ;p=${RSA_P.slice(0, 150)} ${RSA_P.slice(150)};  v=DKIM1;`]),
      exp: { domain: 'dkim.test', keys: [key('order')] },
      want: { status: 'ok', detail: 'p= and k= match.' },
    },
    {
      name: 'a testing flag is noted on an ok record',
      zone: at('testing', [`${ED}; t=y`]),
      exp: { domain: 'dkim.test', keys: [key('testing', ED)] },
      want: { status: 'ok', detail: 'p= and k= match; published t=y, ours has no t=.' },
    },
    {
      name: 'a pending key not yet published is missing; the fix says how to split it',
      zone: {},
      exp: { domain: 'dkim.test', keys: [key('absent', RSA, 'pending')] },
      want: {
        status: 'missing',
        expected: RSA,
        detail: /no TXT record at absent\._domainkey\.dkim\.test.*once it is activated/i,
        fix: new RegExp(
          `^Publish TXT "v=DKIM1; k=rsa; p=${RSA_P.slice(0, 20).replace(/\+/g, '\\+')}.*" at ` +
            'absent\\._domainkey\\.dkim\\.test\\. The value is over 255 bytes',
        ),
      },
    },
    {
      name: 'another public key is wrong',
      zone: at('other', [RSA_OTHER]),
      exp: { domain: 'dkim.test', keys: [key('other')] },
      want: {
        status: 'wrong',
        detail: 'The published record is not our key: p= holds another key.',
        fix: /^Replace the TXT record at other\._domainkey\.dkim\.test with "v=DKIM1; k=rsa; p=/,
      },
    },
    {
      name: 'our Ed25519 key published without k= (so read as RSA) is wrong',
      zone: at('kind', [ED.replace('k=ed25519; ', '')]),
      exp: { domain: 'dkim.test', keys: [key('kind', ED)] },
      want: { status: 'wrong', detail: /k=rsa, our key is ed25519/ },
    },
    {
      name: 'an empty p= (a revoked key) is wrong',
      zone: at('revoked', ['v=DKIM1; k=rsa; p=']),
      exp: { domain: 'dkim.test', keys: [key('revoked')] },
      want: { status: 'wrong', detail: /p= is empty: the key is revoked/ },
    },
    {
      name: 'a second record beside ours is wrong',
      zone: at('twice', [RSA, RSA_OTHER]),
      exp: { domain: 'dkim.test', keys: [key('twice')] },
      want: { status: 'wrong', detail: /^2 TXT records at twice\._domainkey\.dkim\.test/ },
    },
    {
      name: 'a retired key that is gone is ok',
      zone: {},
      exp: { domain: 'dkim.test', keys: [key('gone', RSA, 'retired')] },
      want: { status: 'ok', detail: 'Retired key, not published: nothing more to do.' },
    },
    {
      name: 'a retired key still published is ok, with advice',
      zone: at('lingering', [RSA]),
      exp: { domain: 'dkim.test', keys: [key('lingering', RSA, 'retired')] },
      want: { status: 'ok', detail: /^Retired key, still published: harmless/ },
    },
    {
      name: 'SERVFAIL is an error',
      zone: at('broken', undefined, true),
      exp: { domain: 'dkim.test', keys: [key('broken')] },
      want: { status: 'error', detail: /ESERVFAIL/ },
    },
  ]);
});

describe('DMARC: one v=DMARC1 record with a valid p=, at the domain or its organisational domain', () => {
  runCases('dmarc', [
    {
      name: 'own record: policy and alignment in the detail',
      zone: {
        '_dmarc.dm-own.test': { txt: ['v=DMARC1; p=reject; adkim=s; rua=mailto:d@dm-own.test'] },
      },
      exp: { domain: 'dm-own.test', returnPathDomain: 'bounces.dm-own.test' },
      want: {
        status: 'ok',
        name: '_dmarc.dm-own.test',
        detail: 'Policy p=reject; DKIM alignment strict (adkim=s); SPF alignment relaxed (aspf=r).',
      },
    },
    {
      name: 'a subdomain falls back to the organisational domain, where sp= applies',
      zone: { '_dmarc.dm-org.test': { txt: ['v=DMARC1; p=quarantine; sp=reject; pct=50'] } },
      exp: { domain: 'news.dm-org.test' },
      want: {
        status: 'ok',
        name: '_dmarc.dm-org.test',
        detail:
          'Policy sp=reject from the organisational domain dm-org.test; DKIM alignment ' +
          'relaxed (adkim=r); SPF alignment relaxed (aspf=r); applied to 50% of failing mail (pct).',
      },
    },
    {
      name: 'under a two-label public suffix the organisational domain is one label below it',
      zone: {
        '_dmarc.co.uk': { txt: ['v=DMARC1; p=none'] },
        '_dmarc.example.co.uk': { txt: ['v=DMARC1; p=reject'] },
      },
      exp: { domain: 'news.example.co.uk' },
      want: {
        status: 'ok',
        name: '_dmarc.example.co.uk',
        detail: /^Policy p=reject from the organisational domain example\.co\.uk;/,
      },
    },
    {
      name: 'strict SPF alignment with a separate return path is noted',
      zone: { '_dmarc.dm-strict.test': { txt: ['v=DMARC1; p=none; aspf=s'] } },
      exp: { domain: 'dm-strict.test', returnPathDomain: 'bounces.dm-strict.test' },
      want: {
        status: 'ok',
        detail: /SPF cannot align: the return path bounces\.dm-strict\.test is not dm-strict\.test/,
      },
    },
    {
      name: 'neither at the domain nor at the organisational domain',
      zone: { 'news.dm-none.test': { a: ['192.0.2.1'] } },
      exp: { domain: 'news.dm-none.test' },
      want: {
        status: 'missing',
        name: '_dmarc.news.dm-none.test',
        expected: 'v=DMARC1; p=none',
        detail: /nor at _dmarc\.dm-none\.test/,
        fix: /^Publish TXT "v=DMARC1; p=none" at _dmarc\.news\.dm-none\.test; /,
      },
    },
    {
      name: 'v=DMARC1 not first',
      zone: { '_dmarc.dm-order.test': { txt: ['p=reject; v=DMARC1'] } },
      exp: { domain: 'dm-order.test' },
      want: { status: 'wrong', detail: /does not start with v=DMARC1/ },
    },
    {
      name: 'no p= tag: the expected record adds p=none',
      zone: { '_dmarc.dm-nop.test': { txt: ['v=DMARC1; rua=mailto:d@dm-nop.test'] } },
      exp: { domain: 'dm-nop.test' },
      want: {
        status: 'wrong',
        expected: 'v=DMARC1; p=none; rua=mailto:d@dm-nop.test',
        detail: /it has no p= tag/,
      },
    },
    {
      name: 'an unknown policy',
      zone: { '_dmarc.dm-bad.test': { txt: ['v=DMARC1; p=block; adkim=s'] } },
      exp: { domain: 'dm-bad.test' },
      want: { status: 'wrong', expected: 'v=DMARC1; p=none; adkim=s', detail: /\(p=block\)/ },
    },
    {
      name: 'two records',
      zone: { '_dmarc.dm-two.test': { txt: ['v=DMARC1; p=none', 'v=DMARC1; p=reject'] } },
      exp: { domain: 'dm-two.test' },
      want: { status: 'wrong', detail: /^2 v=DMARC1 records/ },
    },
    {
      name: 'SERVFAIL at the organisational domain is an error there',
      zone: { '_dmarc.dm-sf.test': { servfail: true } },
      exp: { domain: 'news.dm-sf.test' },
      want: { status: 'error', name: '_dmarc.dm-sf.test', detail: /ESERVFAIL/ },
    },
  ]);
});

describe('return path: its MX (or CNAME) leads to the bounce host', () => {
  const exp = (rp: string) => ({
    domain: 'rp.test',
    returnPathDomain: rp,
    bounceHost: 'bounce.grid.test',
  });
  const mx = (exchange: string) => ({ mx: [{ exchange, priority: 10 }] });
  runCases('return-path', [
    {
      name: 'an MX to the bounce host',
      zone: { 'mx.rp.test': mx('bounce.grid.test') },
      exp: exp('mx.rp.test'),
      want: { status: 'ok', name: 'mx.rp.test', found: ['MX 10 bounce.grid.test'] },
    },
    {
      name: 'a CNAME to the bounce host',
      zone: {
        'cname.rp.test': { cname: 'bounce.grid.test' },
        'bounce.grid.test': { a: ['192.0.2.9'] },
      },
      exp: exp('cname.rp.test'),
      want: {
        status: 'ok',
        found: ['CNAME bounce.grid.test'],
        detail: 'cname.rp.test is a CNAME to bounce.grid.test.',
      },
    },
    {
      name: 'an MX elsewhere',
      zone: { 'elsewhere.rp.test': mx('mx.mailhost.test') },
      exp: exp('elsewhere.rp.test'),
      want: {
        status: 'wrong',
        detail:
          'elsewhere.rp.test has MX records leading to mx.mailhost.test, not bounce.grid.test.',
        fix: /^Make the only MX of elsewhere\.rp\.test "10 bounce\.grid\.test", or/,
      },
    },
    {
      name: 'a CNAME elsewhere',
      zone: {
        'cname2.rp.test': { cname: 'other.grid.test' },
        'other.grid.test': { a: ['192.0.2.9'] },
      },
      exp: exp('cname2.rp.test'),
      want: { status: 'wrong', detail: /a CNAME to other\.grid\.test leading to no MX host/ },
    },
    {
      name: 'a name with an address but no MX',
      zone: { 'noMx.rp.test': { a: ['192.0.2.9'] } },
      exp: exp('nomx.rp.test'),
      want: { status: 'missing', expected: 'MX 10 bounce.grid.test (or CNAME bounce.grid.test)' },
    },
    {
      name: 'a Null MX refuses bounces',
      zone: { 'null.rp.test': mx('') },
      exp: exp('null.rp.test'),
      want: { status: 'wrong', found: ['MX 10 .'], detail: /Null MX/ },
    },
    {
      name: 'SERVFAIL is an error',
      zone: { 'sf.rp.test': { servfail: true } },
      exp: exp('sf.rp.test'),
      want: { status: 'error', detail: /ESERVFAIL/ },
    },
  ]);
});

describe('PTR: each egress address names its HELO, which resolves back (FCrDNS)', () => {
  const ptr = (ip: string, name: string) => ({ [reverseName(ip)]: { ptr: [name] } });
  runCases('ptr', [
    {
      name: 'IPv4 forward-confirmed',
      zone: { ...ptr('192.0.2.31', 'mta1.ptr.test'), 'mta1.ptr.test': { a: ['192.0.2.31'] } },
      exp: { domain: 'ptr.test', sources: [source('one', '192.0.2.31', 'mta1.ptr.test')] },
      want: {
        status: 'ok',
        name: '31.2.0.192.in-addr.arpa',
        expected: 'PTR mta1.ptr.test',
        found: ['mta1.ptr.test'],
        detail: '192.0.2.31 → mta1.ptr.test → 192.0.2.31: forward-confirmed.',
      },
    },
    {
      name: 'IPv6 forward-confirmed, the AAAA written in another form',
      zone: {
        ...ptr('2001:db8::31', 'mta6.ptr.test'),
        'mta6.ptr.test': { aaaa: ['2001:db8:0:0::31'] },
      },
      exp: { domain: 'ptr.test', sources: [source('six', '2001:db8::31', 'MTA6.ptr.test.')] },
      want: { status: 'ok', name: reverseName('2001:db8::31') },
    },
    {
      name: 'no PTR',
      zone: {},
      exp: { domain: 'ptr.test', sources: [source('two', '192.0.2.32', 'mta2.ptr.test')] },
      want: {
        status: 'missing',
        fix:
          'Ask the holder of 192.0.2.32 (the hosting provider or ISP) to set its PTR to ' +
          'mta2.ptr.test.',
      },
    },
    {
      name: 'a PTR with another name',
      zone: ptr('192.0.2.33', 'host-33.isp.test'),
      exp: { domain: 'ptr.test', sources: [source('three', '192.0.2.33', 'mta3.ptr.test')] },
      want: {
        status: 'wrong',
        detail: 'The PTR of 192.0.2.33 gives host-33.isp.test, not the HELO name mta3.ptr.test.',
      },
    },
    {
      name: 'a PTR that does not forward-confirm',
      zone: { ...ptr('192.0.2.34', 'mta4.ptr.test'), 'mta4.ptr.test': { a: ['192.0.2.99'] } },
      exp: { domain: 'ptr.test', sources: [source('four', '192.0.2.34', 'mta4.ptr.test')] },
      want: {
        status: 'wrong',
        detail: /which resolves to 192\.0\.2\.99, so it does not forward-confirm/,
        fix: 'Publish A 192.0.2.34 at mta4.ptr.test.',
      },
    },
    {
      name: 'a HELO name without any address',
      zone: { ...ptr('192.0.2.35', 'mta5.ptr.test'), 'mta5.ptr.test': { txt: ['x'] } },
      exp: { domain: 'ptr.test', sources: [source('five', '192.0.2.35', 'mta5.ptr.test')] },
      want: { status: 'wrong', detail: /mta5\.ptr\.test, which has no A record/ },
    },
    {
      name: 'SERVFAIL on the reverse lookup is an error',
      zone: { [reverseName('192.0.2.36')]: { servfail: true } },
      exp: { domain: 'ptr.test', sources: [source('six', '192.0.2.36', 'mta6.ptr.test')] },
      want: { status: 'error', detail: /ESERVFAIL/ },
    },
  ]);
});

describe('checkDns as a whole', () => {
  const full: DnsExpectation = {
    domain: 'Full.test.',
    returnPathDomain: 'bounces.full.test',
    bounceHost: 'bounce.grid.test',
    keys: [
      { selector: 'gp1', algorithm: 'rsa-sha256', record: RSA, state: 'active' },
      { selector: 'gp2', algorithm: 'ed25519-sha256', record: ED, state: 'retiring' },
    ],
    sources: [
      source('v4', '192.0.2.41', 'o4.full.test'),
      source('v6', '2001:db8::41', 'o6.full.test'),
    ],
  };

  it('a maildomain with everything published: one ok row per record, in order', async () => {
    zone({
      'bounces.full.test': {
        txt: ['v=spf1 ip4:192.0.2.40/30 ip6:2001:db8::/64 -all'],
        mx: [{ exchange: 'bounce.grid.test', priority: 10 }],
      },
      'gp1._domainkey.full.test': { txt: [RSA] },
      'gp2._domainkey.full.test': { txt: [ED] },
      '_dmarc.full.test': { txt: ['v=DMARC1; p=quarantine'] },
      [reverseName('192.0.2.41')]: { ptr: ['o4.full.test'] },
      [reverseName('2001:db8::41')]: { ptr: ['o6.full.test'] },
      'o4.full.test': { a: ['192.0.2.41'] },
      'o6.full.test': { aaaa: ['2001:db8::41'] },
    });
    const rows = await checkDns(full, lookup());
    const summary = rows.map((r) => `${r.kind} ${r.name} ${r.status}`);
    assert.deepEqual(summary, [
      'spf bounces.full.test ok',
      'dkim gp1._domainkey.full.test ok',
      'dkim gp2._domainkey.full.test ok',
      'dmarc _dmarc.full.test ok',
      'return-path bounces.full.test ok',
      `ptr ${reverseName('192.0.2.41')} ok`,
      `ptr ${reverseName('2001:db8::41')} ok`,
    ]);
    assert.deepEqual(
      rows.map((r) => r.selector ?? r.source ?? '-'),
      ['-', 'gp1', 'gp2', '-', '-', 'v4', 'v6'],
    );
  });

  it('an unreachable DNS server: every row is an error, none missing, nothing thrown', async () => {
    const closed = await freePort();
    const rows = await checkDns(full, lookup(`127.0.0.1:${closed}`), { timeoutMs: 3_000 });
    assert.equal(rows.length, 7);
    for (const r of rows) {
      assert.equal(r.status, 'error', `${r.kind} ${r.name}: ${r.detail}`);
      assert.match(r.detail, /ECONNREFUSED|ETIMEOUT/);
    }
  });

  it('takes a bare machine name (an unconfigured engine\'s "vm") and judges it, not itself', async () => {
    const exp = { ...full, bounceHost: 'vm', sources: [source('x', '192.0.2.3', 'vm')] };
    const rows = await checkDns(exp, lookup());
    const by = (kind: string) => rows.find((r) => r.kind === kind)!;
    assert.equal(by('return-path').status, 'wrong');
    assert.match(by('return-path').fix, /"10 vm"/);
    assert.notEqual(by('ptr').status, 'ok');
  });

  const bad: [string, Partial<DnsExpectation>, string][] = [
    ['domain', { domain: 'not a domain' }, 'domain'],
    ['address', { sources: [source('x', '192.0.2.300')] }, 'sources[0].address'],
    ['HELO name', { sources: [source('x', '192.0.2.3', '')] }, 'sources[0].helo'],
    [
      'selector',
      { keys: [{ selector: 'a b', algorithm: 'rsa-sha256', record: RSA, state: 'active' }] },
      'keys[0].selector',
    ],
    [
      'key record',
      {
        keys: [{ selector: 's', algorithm: 'rsa-sha256', record: 'v=DKIM1; p=', state: 'active' }],
      },
      'keys[0].record',
    ],
  ];
  for (const [what, change, path] of bad) {
    it(`a malformed ${what} is refused with E_VALIDATION at ${path}`, async () => {
      const exp = { ...full, ...change };
      await assert.rejects(checkDns(exp, lookup()), (err: unknown) => {
        assert.ok(err instanceof GridpostError);
        assert.equal(err.code, 'E_VALIDATION');
        assert.equal(err.path, path);
        return true;
      });
    });
  }
});

/** A UDP port nothing listens on (taken from the kernel, then released). */
async function freePort(): Promise<number> {
  const socket = dgram.createSocket('udp4');
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  const { port } = socket.address();
  socket.close();
  return port;
}

const DNSMASQ = '/usr/sbin/dnsmasq';
const haveDnsmasq = spawnSync(DNSMASQ, ['--version']).status === 0;

/** dnsmasq's command line: loopback only, no upstream, no system files, our records. */
function dnsmasqArgs(port: number): string[] {
  return [
    '--no-daemon',
    `--port=${port}`,
    '--listen-address=127.0.0.1',
    '--bind-interfaces',
    '--no-resolv',
    '--no-hosts',
    '--conf-file=/dev/null',
    '--log-facility=-',
    // NXDOMAIN for unknown names in these zones; other names are REFUSED (no upstream).
    '--local=/dm.test/',
    '--local=/2.0.192.in-addr.arpa/',
    '--txt-record=bounces.dm.test,v=spf1 ip4:192.0.2.7 -all',
    // dnsmasq splits a value over 255 bytes into strings itself.
    `--txt-record=gp1._domainkey.dm.test,${RSA}`,
    '--txt-record=_dmarc.dm.test,v=DMARC1; p=reject; aspf=s',
    '--mx-host=bounces.dm.test,bounce.grid.test,10',
    // A host record also answers the PTR of its address.
    '--host-record=mta1.dm.test,192.0.2.7',
    '--host-record=mta2.dm.test,192.0.2.99',
    '--ptr-record=8.2.0.192.in-addr.arpa,mta2.dm.test',
  ];
}

/** Starts dnsmasq on a free port; resolves once it logs that it has started (it binds first). */
async function startDnsmasq(): Promise<{ child: ChildProcess; address: string }> {
  const port = await freePort();
  const child = spawn(DNSMASQ, dnsmasqArgs(port), { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`dnsmasq did not start: ${log}`)), 5_000);
    child.on('exit', (code) => reject(new Error(`dnsmasq exited (${code}): ${log}`)));
    // Keep reading its log for its whole life, so a full pipe never blocks it.
    child.stderr?.on('data', (chunk) => {
      log += String(chunk);
      if (/started, version/.test(log)) resolve(clearTimeout(timer));
    });
  });
  return { child, address: `127.0.0.1:${port}` };
}

const DM: DnsExpectation = {
  domain: 'dm.test',
  returnPathDomain: 'bounces.dm.test',
  bounceHost: 'bounce.grid.test',
  keys: [
    { selector: 'gp1', algorithm: 'rsa-sha256', record: RSA, state: 'active' },
    { selector: 'gp2', algorithm: 'ed25519-sha256', record: ED, state: 'pending' },
  ],
  sources: [source('one', '192.0.2.7', 'mta1.dm.test'), source('two', '192.0.2.8', 'mta2.dm.test')],
};

describe('against dnsmasq, a DNS server nobody here wrote', () => {
  const skip = haveDnsmasq ? false : `${DNSMASQ} is not installed (apt-get install dnsmasq-base)`;
  let server: { child: ChildProcess; address: string } | undefined;
  before(async () => {
    if (haveDnsmasq) server = await startDnsmasq();
  });
  after(async () => {
    if (!server) return;
    server.child.kill();
    if (server.child.exitCode === null) await once(server.child, 'exit');
  });

  it('finds ok, missing and wrong records', { skip }, async () => {
    const rows = await checkDns(DM, lookup(server?.address));
    assert.deepEqual(
      rows.map((r) => `${r.kind} ${r.name} ${r.status}`),
      [
        'spf bounces.dm.test wrong',
        'dkim gp1._domainkey.dm.test ok',
        'dkim gp2._domainkey.dm.test missing',
        'dmarc _dmarc.dm.test ok',
        'return-path bounces.dm.test ok',
        'ptr 7.2.0.192.in-addr.arpa ok',
        'ptr 8.2.0.192.in-addr.arpa wrong',
      ],
    );
    assert.match(rows[0]?.fix ?? '', /^Add ip4:192\.0\.2\.8 to the SPF record at bounces\.dm/);
    assert.match(rows[3]?.detail ?? '', /^Policy p=reject; .*SPF cannot align/);
    assert.match(rows[6]?.detail ?? '', /mta2\.dm\.test, which resolves to 192\.0\.2\.99/);
  });

  it('a name it refuses (REFUSED) is an error, not missing', { skip }, async () => {
    const elsewhere = { ...DM, domain: 'elsewhere.test', returnPathDomain: undefined, keys: [] };
    const rows = await checkDns(elsewhere, lookup(server?.address));
    assert.deepEqual(
      rows.slice(0, 2).map((r) => `${r.kind} ${r.status} ${/EREFUSED/.test(r.detail)}`),
      ['spf error true', 'dmarc error true'],
    );
  });
});
