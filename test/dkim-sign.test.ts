/**
 * The DKIM signer and domain keys. Signed messages of the corpus (test/data/dkim, see its
 * README) are verified by three independent verifiers from Debian packages, dkimpy, Mail::DKIM
 * and OpenDKIM, each reading the public keys from the test DNS server; negative cases prove
 * they can fail. Then table-driven units: canonicalisation, h= and folding, options and
 * errors, key import and the DNS record.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { Resolver } from 'node:dns/promises';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GridpostError } from '../src/errors/catalogue.js';
import type { ErrorCode } from '../src/errors/catalogue.js';
import { canonicalBody, relaxedField, splitMessage, wireForm } from '../src/signing/dkim-canon.js';
import type { Canonicalization, CanonMode } from '../src/signing/dkim-canon.js';
import {
  compareRecord,
  dkimRecord,
  generateKey,
  keyBits,
  publishedMatches,
  readPrivateKey,
  splitRecord,
} from '../src/signing/dkim-key.js';
import type { DomainKeyMaterial } from '../src/signing/dkim-key.js';
import { signMessage, signMessageSync } from '../src/signing/dkim-sign.js';
import type { DkimSigner } from '../src/signing/dkim-sign.js';
import { stopSigningWorkers } from '../src/signing/sign-offload.js';
import type { TestDnsServer } from '../src/testworld/dns-server.js';
import {
  dnsOf,
  onlySignature,
  startDnsForVerifiers,
  verifyWithDkimpy,
  verifyWithMailDkim,
  verifyWithOpendkim,
} from './support/dkim-verifiers.js';
import type { Verdict, VerifierDns } from './support/dkim-verifiers.js';

const CORPUS = 'test/data/dkim';
const DOMAIN = 'maildomain.test';
const CANONS: Canonicalization[] = [
  'relaxed/relaxed',
  'simple/simple',
  'relaxed/simple',
  'simple/relaxed',
];
// 2026-12-04T10:15:00Z: t= of every corpus signature, so runs are reproducible.
const NOW = new Date(Date.UTC(2026, 11, 4, 10, 15, 0));
// Debian's Mail::DKIM 1.20230212 knows rsa-sha256 only; it reports Ed25519 signatures so.
const MAIL_DKIM_NO_ED25519 = 'invalid (unsupported algorithm ed25519-sha256)';

// opendkim-testmsg refuses a message whose header fields break RFC 5322 §3.6 (two To, Cc or
// Reply-To fields; no Date) with "Syntax error" before it looks at any signature. Such
// messages reach the wild, so the corpus keeps one; dkimpy and Mail::DKIM verify it.
const OPENDKIM_REFUSES: Record<string, RegExp> = {
  '03-duplicate-headers.eml': /dkim_chunk\(\): Syntax error/,
};

const corpusFiles = readdirSync(CORPUS)
  .filter((f) => f.endsWith('.eml'))
  .sort();

/** The keys of the verifier tests, by selector. */
interface Keys {
  rsa1024: DomainKeyMaterial;
  rsa2048: DomainKeyMaterial;
  rsa4096: DomainKeyMaterial;
  ed25519: DomainKeyMaterial;
  /** Signs under selector "wrongkey", whose DNS record holds rsa2048's public key instead. */
  wrong: DomainKeyMaterial;
}

function signer(selector: keyof Keys, keys: Keys, canon?: Canonicalization): DkimSigner {
  const key = keys[selector];
  const name = selector === 'wrong' ? 'wrongkey' : selector;
  return {
    domain: DOMAIN,
    selector: name,
    algorithm: key.algorithm,
    privateKey: key.privateKey,
    canonicalization: canon,
  };
}

/** A signed message and what each verifier must say about each of our signatures. */
interface Case {
  name: string;
  message: Buffer;
  /** Per signature (0 = top): the algorithm, and whether it must verify. */
  expect: { algorithm: 'rsa' | 'ed25519'; pass: boolean }[];
  /** OpenDKIM refuses the message itself before any signature: its error text. */
  opendkimRefuses?: RegExp;
}

/** All three verifiers over a batch of cases; per case and signature index, their verdicts. */
async function verifyAll(cases: Case[], dns: VerifierDns, dir: string) {
  const whole = cases.map((c, i) => join(dir, `${i}.eml`));
  cases.forEach((c, i) => writeFileSync(whole[i]!, c.message));
  // OpenDKIM passes a message when any signature verifies: give it one signature at a time.
  const single: string[] = [];
  cases.forEach((c, i) =>
    c.expect.forEach((_, s) => {
      const file = join(dir, `${i}-only${s}.eml`);
      writeFileSync(file, onlySignature(c.message, s));
      single.push(file);
    }),
  );
  const [dkimpy, mailDkim, opendkim] = await Promise.all([
    verifyWithDkimpy(whole, dns),
    verifyWithMailDkim(whole, dns),
    verifyWithOpendkim(single, dns),
  ]);
  return (i: number, s: number) => ({
    dkimpy: dkimpy.get(whole[i]!)?.[s],
    mailDkim: mailDkim.get(whole[i]!)?.[s],
    opendkim: opendkim.get(join(dir, `${i}-only${s}.eml`)),
  });
}

/** Asserts each verifier's verdict on one signature of one case. */
function assertVerdicts(
  c: Case,
  s: number,
  got: { dkimpy?: Verdict; mailDkim?: Verdict; opendkim?: Verdict },
) {
  const { algorithm, pass } = c.expect[s]!;
  const say = (who: string, v?: Verdict) => `${c.name}, signature ${s}: ${who} said ${v?.detail}`;
  assert.equal(got.dkimpy?.pass, pass, say('dkimpy', got.dkimpy));
  if (c.opendkimRefuses) assert.match(got.opendkim?.detail ?? '', c.opendkimRefuses);
  else assert.equal(got.opendkim?.pass, pass, say('OpenDKIM', got.opendkim));
  // A failure must be the signature's, not a missing key or a DNS error.
  if (!pass && !c.opendkimRefuses) assert.match(got.opendkim!.detail, /Bad signature/);
  if (algorithm === 'ed25519' && got.mailDkim?.detail === MAIL_DKIM_NO_ED25519) return;
  assert.equal(got.mailDkim?.pass, pass, say('Mail::DKIM', got.mailDkim));
  if (!pass) assert.match(got.mailDkim!.detail, /^fail \(/, say('Mail::DKIM', got.mailDkim));
}

describe('signatures verified by dkimpy, Mail::DKIM and OpenDKIM over the test DNS', () => {
  let dnsServer: TestDnsServer;
  let dns: VerifierDns;
  let keys: Keys;
  let dir: string;

  before(async () => {
    dnsServer = await startDnsForVerifiers();
    dns = dnsOf(dnsServer);
    dir = mkdtempSync(join(tmpdir(), 'gridpost-dkim-'));
    const [rsa1024, rsa2048, rsa4096, ed25519, wrong] = await Promise.all([
      generateKey('rsa-sha256', 1024),
      generateKey('rsa-sha256', 2048),
      generateKey('rsa-sha256', 4096),
      generateKey('ed25519-sha256'),
      generateKey('rsa-sha256', 2048),
    ]);
    keys = { rsa1024, rsa2048, rsa4096, ed25519, wrong };
    for (const selector of ['rsa1024', 'rsa2048', 'rsa4096', 'ed25519'] as const) {
      const name = `${selector}._domainkey.${DOMAIN}`;
      dnsServer.set(name, { txt: [dkimRecord(keys[selector].publicKey)] });
    }
    dnsServer.set(`wrongkey._domainkey.${DOMAIN}`, { txt: [dkimRecord(rsa2048.publicKey)] });
  });
  after(async () => {
    await dnsServer?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe('the corpus, dual-signed (RSA-2048 and Ed25519) in every canonicalisation', () => {
    const cases: Case[] = [];
    let verdicts: Awaited<ReturnType<typeof verifyAll>>;
    before(async () => {
      for (const file of corpusFiles) {
        for (const canon of CANONS) {
          const message = readFileSync(join(CORPUS, file));
          const signers = [signer('rsa2048', keys, canon), signer('ed25519', keys, canon)];
          cases.push({
            name: `${file} ${canon}`,
            message: signMessageSync(message, signers, NOW),
            expect: [
              { algorithm: 'rsa', pass: true },
              { algorithm: 'ed25519', pass: true },
            ],
            opendkimRefuses: OPENDKIM_REFUSES[file],
          });
        }
      }
      verdicts = await verifyAll(cases, dns, mkSub(dir, 'corpus'));
    });

    for (const [f, file] of corpusFiles.entries()) {
      it(`${file}: both signatures verify in all four canonicalisations`, () => {
        for (let k = 0; k < CANONS.length; k++) {
          const i = f * CANONS.length + k;
          for (let s = 0; s < 2; s++) assertVerdicts(cases[i]!, s, verdicts(i, s));
        }
      });
    }
  });

  describe('RSA key sizes', () => {
    const cases: Case[] = [];
    let verdicts: Awaited<ReturnType<typeof verifyAll>>;
    const sample = ['01-plain-text.eml', '04-utf8-headers.eml', '17-newsletter-20k.eml'];
    before(async () => {
      for (const selector of ['rsa1024', 'rsa4096'] as const) {
        for (const file of sample) {
          for (const canon of ['relaxed/relaxed', 'simple/simple'] as const) {
            const message = readFileSync(join(CORPUS, file));
            const signed = signMessageSync(message, [signer(selector, keys, canon)], NOW);
            cases.push({
              name: `${selector} ${file} ${canon}`,
              message: signed,
              expect: [{ algorithm: 'rsa', pass: true }],
            });
          }
        }
      }
      verdicts = await verifyAll(cases, dns, mkSub(dir, 'sizes'));
    });

    it('RSA-1024 signatures verify (the key is flagged weak)', () => {
      assert.equal(keys.rsa1024.weak, true);
      cases.slice(0, 6).forEach((c, i) => assertVerdicts(c, 0, verdicts(i, 0)));
    });

    it('RSA-4096 signatures verify, their record served as several TXT strings', async () => {
      assert.equal(keys.rsa4096.weak, false);
      cases.slice(6).forEach((c, i) => assertVerdicts(c, 0, verdicts(i + 6, 0)));
      const record = dkimRecord(keys.rsa4096.publicKey);
      const resolver = new Resolver({ timeout: 2000, tries: 1 });
      resolver.setServers([dnsServer.address]);
      const [strings] = await resolver.resolveTxt(`rsa4096._domainkey.${DOMAIN}`);
      assert.ok(strings && strings.length >= 3, `${strings?.length} strings`);
      assert.deepEqual(strings, splitRecord(record));
    });
  });

  describe('changes in transit: the verifiers fail exactly when a signed part changed', () => {
    type Change = {
      name: string;
      change: (m: string) => string;
      pass: boolean;
      opendkimRefuses?: RegExp;
    };
    // OpenDKIM refuses a message with two From fields (RFC 5322 §3.6) before checking any
    // signature, so there dkimpy and Mail::DKIM alone show what over-signing From does.
    const twoFroms = /dkim_chunk\(\): Syntax error/;
    const changes: Change[] = [
      { name: 'unchanged', change: (m) => m, pass: true },
      { name: 'a body byte changed', change: (m) => m.replace('Idea 3:', 'Idea 8:'), pass: false },
      {
        name: 'a From field added on top (From is over-signed)',
        change: (m) => 'From: Mallory <ceo@maildomain.test>\r\n' + m,
        pass: false,
        opendkimRefuses: twoFroms,
      },
      {
        name: 'a From field added under the others',
        change: (m) => m.replace('\r\n\r\n', '\r\nFrom: Mallory <ceo@maildomain.test>\r\n\r\n'),
        pass: false,
        opendkimRefuses: twoFroms,
      },
      {
        name: 'the Subject changed',
        change: (m) => m.replace('Subject: December', 'Subject: URGENT December'),
        pass: false,
      },
      {
        name: 'a second List-Unsubscribe added on top',
        change: (m) => 'List-Unsubscribe: <https://evil.test/u>\r\n' + m,
        pass: false,
      },
      {
        name: 'a Received and an X-Mailer field added (not signed): still verifies',
        change: (m) => 'Received: from relay.test\r\nX-Mailer: relay\r\n' + m,
        pass: true,
      },
    ];
    const cases: Case[] = [];
    let verdicts: Awaited<ReturnType<typeof verifyAll>>;
    before(async () => {
      const message = readFileSync(join(CORPUS, '16-newsletter-5k.eml'));
      const signers = [signer('rsa2048', keys), signer('ed25519', keys)];
      const signed = signMessageSync(message, signers, NOW).toString('latin1');
      for (const { name, change, pass, opendkimRefuses } of changes) {
        const changed = change(signed);
        if (name !== 'unchanged') assert.notEqual(changed, signed, name);
        cases.push({
          name,
          message: Buffer.from(changed, 'latin1'),
          expect: [
            { algorithm: 'rsa', pass },
            { algorithm: 'ed25519', pass },
          ],
          opendkimRefuses,
        });
      }
      const wrong = signMessageSync(message, [signer('wrong', keys)], NOW);
      cases.push({
        name: 'signed with a key other than the one in DNS',
        message: wrong,
        expect: [{ algorithm: 'rsa', pass: false }],
      });
      // The control for over-signing: List-Id is signed but not over-signed by default, so a
      // List-Id added on top goes unnoticed (the verifier takes the bottom one).
      const added = 'List-Id: <other.list.test>\r\n' + signed;
      cases.push({
        name: 'List-Id added on top',
        message: Buffer.from(added, 'latin1'),
        expect: [
          { algorithm: 'rsa', pass: true },
          { algorithm: 'ed25519', pass: true },
        ],
      });
      verdicts = await verifyAll(cases, dns, mkSub(dir, 'changes'));
    });

    const more = [
      { name: 'signed with a key other than the one in DNS' },
      { name: 'a List-Id added on top (signed, not over-signed): still verifies' },
    ];
    for (const [i, { name }] of [...changes, ...more].entries()) {
      it(name, () => {
        const c = cases[i]!;
        c.expect.forEach((_, s) => assertVerdicts(c, s, verdicts(i, s)));
      });
    }
  });

  describe('what each canonicalisation tolerates', () => {
    // Whitespace changes a relay may make: relaxed forgives them, simple does not.
    const headerSpace = (m: string) => m.replace('Subject: Whitespace', 'Subject:  Whitespace');
    const bodySpace = (m: string) => m.replace('middle after', 'middle  after');
    const table: { canon: Canonicalization; change: (m: string) => string; pass: boolean }[] = [
      { canon: 'relaxed/relaxed', change: headerSpace, pass: true },
      { canon: 'simple/relaxed', change: headerSpace, pass: false },
      { canon: 'relaxed/relaxed', change: bodySpace, pass: true },
      { canon: 'relaxed/simple', change: bodySpace, pass: false },
    ];
    const cases: Case[] = [];
    let verdicts: Awaited<ReturnType<typeof verifyAll>>;
    before(async () => {
      const message = readFileSync(join(CORPUS, '06-whitespace-body.eml'));
      for (const { canon, change, pass } of table) {
        const signed = signMessageSync(message, [signer('rsa2048', keys, canon)], NOW);
        const changed = change(signed.toString('latin1'));
        assert.notEqual(changed, signed.toString('latin1'));
        cases.push({
          name: `${canon} ${change === headerSpace ? 'header' : 'body'} whitespace`,
          message: Buffer.from(changed, 'latin1'),
          expect: [{ algorithm: 'rsa', pass }],
        });
      }
      verdicts = await verifyAll(cases, dns, mkSub(dir, 'canon'));
    });

    for (const [i, { canon, change, pass }] of table.entries()) {
      const where = change === headerSpace ? 'a header field' : 'a body line';
      it(`${canon}: a space added in ${where} ${pass ? 'still verifies' : 'fails'}`, () => {
        assertVerdicts(cases[i]!, 0, verdicts(i, 0));
      });
    }
  });
});

function mkSub(dir: string, name: string): string {
  return mkdtempSync(join(dir, `${name}-`));
}

// ---- Units ----

/** A ByteSink that keeps what it is given. */
function collect(body: Buffer, mode: CanonMode): string {
  const parts: Buffer[] = [];
  canonicalBody(body, mode, { update: (b: Buffer) => parts.push(Buffer.from(b)) });
  return Buffer.concat(parts).toString('latin1');
}

/** RFC 6376 §3.4.4 written plainly with regular expressions, to check the byte-level pass. */
function relaxedReference(body: string): string {
  const lines = body
    .replace(/[ \t]+\r\n/g, '\r\n')
    .replace(/[ \t]+/g, ' ')
    .replace(/[ \t]+$/, '');
  const trimmed = lines.replace(/(\r\n)+$/, '');
  return trimmed === '' ? '' : trimmed + '\r\n';
}

describe('canonicalisation', () => {
  const bodies: { name: string; body: string; simple: string; relaxed: string }[] = [
    {
      name: 'RFC 6376 §3.4.6 example',
      body: ' C \r\nD \t E\r\n\r\n\r\n',
      simple: ' C \r\nD \t E\r\n',
      relaxed: ' C\r\nD E\r\n',
    },
    { name: 'empty body', body: '', simple: '\r\n', relaxed: '' },
    { name: 'only empty lines', body: '\r\n\r\n\r\n', simple: '\r\n', relaxed: '' },
    { name: 'only whitespace lines', body: ' \r\n\t\r\n', simple: ' \r\n\t\r\n', relaxed: '' },
    { name: 'clean text', body: 'a b\r\nc\r\n', simple: 'a b\r\nc\r\n', relaxed: 'a b\r\nc\r\n' },
    {
      name: 'empty lines inside are kept',
      body: 'a\r\n\r\n\r\nb  \r\n \r\n',
      simple: 'a\r\n\r\n\r\nb  \r\n \r\n',
      relaxed: 'a\r\n\r\n\r\nb\r\n',
    },
    {
      name: '8-bit bytes',
      body: 'caf\xe9\t \xff\r\n',
      simple: 'caf\xe9\t \xff\r\n',
      relaxed: 'caf\xe9 \xff\r\n',
    },
  ];
  for (const { name, body, simple, relaxed } of bodies) {
    it(`body: ${name}`, () => {
      const bytes = Buffer.from(body, 'latin1');
      assert.equal(collect(bytes, 'simple'), simple);
      assert.equal(collect(bytes, 'relaxed'), relaxed);
    });
  }

  it('relaxed body agrees with the plain regular-expression form on random bodies', () => {
    const alphabet = [' ', '\t', 'a', 'b', '\r\n', '\r\n', '  ', '\xe9'];
    let seed = 42;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let n = 0; n < 500; n++) {
      const parts = Array.from({ length: Math.floor(next() * 60) }, () => {
        return alphabet[Math.floor(next() * alphabet.length)]!;
      });
      const body = parts.join('') + '\r\n';
      assert.equal(collect(Buffer.from(body, 'latin1'), 'relaxed'), relaxedReference(body), body);
    }
  });

  it('relaxed body over the 16 KiB rewrite buffer matches the reference', () => {
    const body = 'word  \t word \r\n'.repeat(5000) + '\r\n\r\n';
    const got = collect(Buffer.from(body, 'latin1'), 'relaxed');
    assert.equal(got, relaxedReference(body));
  });

  it('header fields: RFC 6376 §3.4.6 example, relaxed', () => {
    const { fields } = splitMessage(Buffer.from('A: X\r\nB : Y\t\r\n Z  \r\n\r\n'));
    assert.deepEqual(
      fields.map((f) => relaxedField(f.raw)),
      ['a:X', 'b:Y Z'],
    );
    assert.deepEqual(
      fields.map((f) => f.name),
      ['a', 'b'],
    );
  });

  const wires: { name: string; input: string; want: string }[] = [
    { name: 'bare LF', input: 'A: 1\n\nbody\n', want: 'A: 1\r\n\r\nbody\r\n' },
    { name: 'bare CR', input: 'A: 1\r\n\r\nx\ry\r\n', want: 'A: 1\r\n\r\nx\r\ny\r\n' },
    { name: 'no final CRLF', input: 'A: 1\r\n\r\nlast', want: 'A: 1\r\n\r\nlast\r\n' },
    { name: 'no empty line', input: 'A: 1\r\nB: 2\r\n', want: 'A: 1\r\nB: 2\r\n\r\n' },
    { name: 'no empty line, no CRLF', input: 'A: 1', want: 'A: 1\r\n\r\n' },
  ];
  for (const { name, input, want } of wires) {
    it(`wire form: ${name}`, () => {
      assert.equal(wireForm(Buffer.from(input)).toString(), want);
    });
  }

  it('wire form: a clean message is returned as is, without a copy', () => {
    const clean = Buffer.from('A: 1\r\n\r\nbody\r\n');
    assert.equal(wireForm(clean), clean);
  });
});

/** The DKIM-Signature fields of a signed message, unfolded, top first. */
function signatureFields(signed: Buffer): string[] {
  return splitMessage(signed)
    .fields.filter((f) => f.name === 'dkim-signature')
    .map((f) => f.raw);
}

/** The tags of an unfolded DKIM-Signature field, whitespace removed from values. */
function tagsOf(field: string): Map<string, string> {
  const value = field.slice(field.indexOf(':') + 1).replace(/\s+/g, '');
  return new Map(
    value.split(';').map((t) => [t.slice(0, t.indexOf('=')), t.slice(t.indexOf('=') + 1)]),
  );
}

describe('the DKIM-Signature field', () => {
  let rsa: KeyObject;
  let ed: KeyObject;
  before(() => {
    rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    ed = generateKeyPairSync('ed25519').privateKey;
  });
  const base = (over: Partial<DkimSigner> = {}): DkimSigner => ({
    domain: DOMAIN,
    selector: 's1',
    algorithm: 'rsa-sha256',
    privateKey: rsa,
    ...over,
  });

  it('signs every instance of a duplicated field and over-signs From, To, Cc, Reply-To', () => {
    const message = readFileSync(join(CORPUS, '03-duplicate-headers.eml'));
    const h = tagsOf(signatureFields(signMessageSync(message, [base()], NOW))[0]!).get('h')!;
    const count = (name: string) => h.split(':').filter((n) => n === name).length;
    const table: [string, number][] = [
      ['from', 2], // 1 present + 1
      ['to', 3], // 2 present + 1
      ['cc', 3],
      ['reply-to', 3],
      ['sender', 1], // absent, listed once so none can be added
      ['received', 0], // trace fields are not signed
      ['x-mailer', 0],
      ['list-id', 0], // absent and not over-signed
    ];
    for (const [name, want] of table) assert.equal(count(name), want, `${name} in h=${h}`);
  });

  it('has no line over 78 characters, for any corpus message and algorithm', () => {
    for (const file of corpusFiles) {
      const message = readFileSync(join(CORPUS, file));
      const signers = [base(), base({ algorithm: 'ed25519-sha256', privateKey: ed })];
      for (const field of signatureFields(signMessageSync(message, signers, NOW))) {
        for (const line of field.split('\r\n')) {
          assert.ok(line.length <= 78, `${file}: ${line.length}: ${line}`);
        }
      }
    }
  });

  it('writes t=, x= after it, and i= in dkim-quoted-printable', () => {
    const message = readFileSync(join(CORPUS, '01-plain-text.eml'));
    const identity = 'zoë;x@news.maildomain.test';
    const signed = signMessageSync(message, [base({ identity, expireAfterSeconds: 3600 })], NOW);
    const tags = tagsOf(signatureFields(signed)[0]!);
    assert.equal(tags.get('t'), String(NOW.getTime() / 1000));
    assert.equal(tags.get('x'), String(NOW.getTime() / 1000 + 3600));
    assert.equal(tags.get('i'), 'zo=C3=AB=3Bx@news.maildomain.test');
    assert.equal(tags.get('c'), 'relaxed/relaxed');
    assert.equal(tags.get('a'), 'rsa-sha256');
  });

  it('puts one field per signer on top, in signer order, and leaves the message after them', () => {
    const message = readFileSync(join(CORPUS, '15-existing-signature.eml'));
    const signers = [base(), base({ selector: 's2', algorithm: 'ed25519-sha256', privateKey: ed })];
    const signed = signMessageSync(message, signers, NOW);
    const fields = signatureFields(signed);
    assert.equal(fields.length, 3);
    assert.equal(tagsOf(fields[0]!).get('s'), 's1');
    assert.equal(tagsOf(fields[1]!).get('s'), 's2');
    assert.ok(signed.subarray(signed.length - message.length).equals(message));
  });

  it('signs the same bytes off the event loop as on it', async () => {
    const message = readFileSync(join(CORPUS, '16-newsletter-5k.eml'));
    const signers = [base(), base({ algorithm: 'ed25519-sha256', privateKey: ed })];
    const sync = signMessageSync(message, signers, NOW);
    const offLoop = await signMessage(message, signers, NOW);
    assert.ok(offLoop.equals(sync));
  });

  it('keeps the event loop turning while signatures are made', async () => {
    const message = readFileSync(join(CORPUS, '17-newsletter-20k.eml'));
    const big = generateKeyPairSync('rsa', { modulusLength: 4096 }).privateKey;
    const signers = [base({ privateKey: big })];
    const ticksDuring = async (work: () => Promise<unknown>) => {
      let ticks = 0;
      const timer = setInterval(() => ticks++, 1);
      await work();
      clearInterval(timer);
      return ticks;
    };
    const batch = Array.from({ length: 40 }, () => message);
    const sync = await ticksDuring(async () => batch.map((m) => signMessageSync(m, signers)));
    const off = await ticksDuring(() => Promise.all(batch.map((m) => signMessage(m, signers))));
    assert.equal(sync, 0);
    assert.ok(off >= 5, `${off} timer ticks while 40 RSA-4096 signatures were made`);
  });

  it('rejects what a stopped worker had to sign, and signs again on a new one', async () => {
    const message = readFileSync(join(CORPUS, '16-newsletter-5k.eml'));
    const signers = [Object.freeze(base())];
    await signMessage(message, signers, NOW); // the worker now holds the signer
    const pending = Array.from({ length: 100 }, () => signMessage(message, signers, NOW));
    await new Promise((resolve) => setImmediate(resolve)); // the batch is on its way
    await stopSigningWorkers();
    const outcomes = await Promise.allSettled(pending);
    const refused = outcomes.filter((o) => o.status === 'rejected');
    assert.ok(refused.length > 0, 'the stopped worker signed everything before it stopped');
    for (const o of refused) assert.match(String(o.reason), /signing worker exited/);
    // A new worker is started and given the signer again.
    const again = await signMessage(message, signers, NOW);
    assert.ok(again.equals(signMessageSync(message, signers, NOW)));
  });

  const refusals: { name: string; signer: () => DkimSigner; path: string }[] = [
    { name: 'a domain with a space', signer: () => base({ domain: 'bad domain' }), path: 'domain' },
    { name: 'a selector with "_"', signer: () => base({ selector: 'a_b' }), path: 'selector' },
    {
      name: 'an Ed25519 key for rsa-sha256',
      signer: () => base({ privateKey: ed }),
      path: 'privateKey',
    },
    {
      name: 'i= outside d=',
      signer: () => base({ identity: 'a@other.test' }),
      path: 'identity',
    },
    {
      name: 'i= on a look-alike domain',
      signer: () => base({ identity: 'a@evilmaildomain.test' }),
      path: 'identity',
    },
    {
      name: 'x= not after t=',
      signer: () => base({ expireAfterSeconds: 0 }),
      path: 'expireAfterSeconds',
    },
    {
      name: 'an unknown canonicalisation',
      signer: () => base({ canonicalization: 'loose/loose' as Canonicalization }),
      path: 'canonicalization',
    },
    {
      name: 'a header name with a colon',
      signer: () => base({ headers: ['a:b'] }),
      path: 'headers',
    },
  ];
  for (const { name, signer: make, path } of refusals) {
    it(`refuses ${name} (E_VALIDATION at signers[0].${path})`, () => {
      const message = readFileSync(join(CORPUS, '01-plain-text.eml'));
      assert.throws(
        () => signMessageSync(message, [make()]),
        (e: unknown) =>
          e instanceof GridpostError &&
          e.code === 'E_VALIDATION' &&
          e.path === `signers[0].${path}`,
      );
    });
  }

  it('refuses a message without From (E_BAD_MESSAGE)', async () => {
    const message = Buffer.from('To: a@b.test\r\nSubject: x\r\n\r\nbody\r\n');
    await assert.rejects(signMessage(message, [base()]), { code: 'E_BAD_MESSAGE' });
  });

  it('signs with a custom header list, From still included and over-signed', () => {
    const message = readFileSync(join(CORPUS, '01-plain-text.eml'));
    const signed = signMessageSync(message, [base({ headers: ['Subject'], oversign: [] })], NOW);
    assert.equal(tagsOf(signatureFields(signed)[0]!).get('h'), 'from:from:subject');
  });
});

describe('domain keys', () => {
  let rsa: DomainKeyMaterial;
  let ed: DomainKeyMaterial;
  before(async () => {
    [rsa, ed] = await Promise.all([generateKey('rsa-sha256'), generateKey('ed25519-sha256')]);
  });

  it('generates RSA-2048 by default and Ed25519; RSA-1024 is flagged weak', async () => {
    assert.deepEqual([rsa.algorithm, rsa.bits, rsa.weak], ['rsa-sha256', 2048, false]);
    assert.deepEqual([ed.algorithm, ed.bits, ed.weak], ['ed25519-sha256', 256, false]);
    const weak = await generateKey('rsa-sha256', 1024);
    assert.deepEqual([weak.bits, weak.weak, keyBits(weak.privateKey)], [1024, true, 1024]);
    await assert.rejects(generateKey('rsa-sha256', 1536), { code: 'E_VALIDATION' });
  });

  it('reads back PKCS#1 and PKCS#8 PEM, RSA and Ed25519', () => {
    const pkcs1 = rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
    assert.match(pkcs1, /BEGIN RSA PRIVATE KEY/);
    for (const pem of [pkcs1, rsa.pem, Buffer.from(rsa.pem)]) {
      const back = readPrivateKey(pem);
      assert.equal(dkimRecord(back.privateKey), dkimRecord(rsa.publicKey));
    }
    const edBack = readPrivateKey(ed.pem);
    assert.equal(edBack.algorithm, 'ed25519-sha256');
    assert.equal(dkimRecord(edBack.privateKey), dkimRecord(ed.publicKey));
  });

  const pemOf = (key: KeyObject, opts: object = {}) =>
    key.export({ type: 'pkcs8', format: 'pem', ...opts }).toString();
  const bad: { name: string; pem: () => string; code: ErrorCode }[] = [
    { name: 'garbage', pem: () => 'hello world', code: 'E_KEY_INVALID' },
    {
      name: 'a damaged PEM',
      pem: () => rsa.pem.replace(/\n[A-Za-z0-9+/]{20}/, '\n!!!!'),
      code: 'E_KEY_INVALID',
    },
    {
      name: 'a public key',
      pem: () => rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      code: 'E_KEY_INVALID',
    },
    {
      name: 'an OpenSSH key',
      pem: () => '-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbg==\n-----END OPENSSH PRIVATE KEY-----',
      code: 'E_KEY_INVALID',
    },
    {
      name: 'an encrypted PKCS#8 key',
      pem: () => pemOf(rsa.privateKey, { cipher: 'aes-256-cbc', passphrase: 'secret' }),
      code: 'E_KEY_ENCRYPTED',
    },
    {
      name: 'an encrypted PKCS#1 key',
      pem: () =>
        rsa.privateKey
          .export({ type: 'pkcs1', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' })
          .toString(),
      code: 'E_KEY_ENCRYPTED',
    },
    {
      name: 'an EC P-256 key',
      pem: () => pemOf(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey),
      code: 'E_KEY_UNSUPPORTED',
    },
    {
      name: 'an Ed448 key',
      pem: () => pemOf(generateKeyPairSync('ed448').privateKey),
      code: 'E_KEY_UNSUPPORTED',
    },
    {
      name: 'an RSA key of 4160 bits',
      pem: () => pemOf(generateKeyPairSync('rsa', { modulusLength: 4160 }).privateKey),
      code: 'E_KEY_UNSUPPORTED',
    },
    {
      name: 'an RSA key of 768 bits',
      pem: () => pemOf(generateKeyPairSync('rsa', { modulusLength: 768 }).privateKey),
      code: 'E_KEY_WEAK',
    },
  ];
  for (const { name, pem, code } of bad) {
    it(`refuses ${name} with ${code}`, () => {
      assert.throws(
        () => readPrivateKey(pem()),
        (e: unknown) => e instanceof GridpostError && e.code === code && e.fix.length > 0,
      );
    });
  }

  it('publishes RSA as SPKI DER and Ed25519 as the raw 32-byte key (RFC 8463)', () => {
    const rsaRecord = dkimRecord(rsa.privateKey);
    assert.match(rsaRecord, /^v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA/);
    const edRecord = dkimRecord(ed.publicKey);
    const p = Buffer.from(edRecord.split('p=')[1]!, 'base64');
    assert.match(edRecord, /^v=DKIM1; k=ed25519; p=/);
    assert.equal(p.length, 32);
    const spki = ed.publicKey.export({ type: 'spki', format: 'der' });
    assert.ok(spki.subarray(spki.length - 32).equals(p));
  });

  it('splits records into strings of at most 255 bytes', async () => {
    const big = await generateKey('rsa-sha256', 4096);
    for (const [key, count] of [
      [ed, 1],
      [rsa, 2],
      [big, 3],
    ] as const) {
      const record = dkimRecord(key.publicKey);
      const strings = splitRecord(record);
      assert.equal(strings.length, count, record);
      assert.equal(strings.join(''), record);
      assert.ok(strings.every((s) => Buffer.byteLength(s) <= 255));
    }
  });

  it('compares a published record with ours: tags, spaces and key forms', () => {
    const ours = dkimRecord(rsa.publicKey);
    const p = ours.split('p=')[1]!;
    const pkcs1 = rsa.publicKey.export({ type: 'pkcs1', format: 'der' }).toString('base64');
    const other = dkimRecord(ed.publicKey);
    const table: [string, string, true | string][] = [
      ['the same record', ours, true],
      [
        'tags reordered, spaces and a trailing ;',
        ` p = ${p.slice(0, 99)} ${p.slice(99)} ; v=DKIM1;k=rsa;`,
        true,
      ],
      ['no v= and no k= (k= defaults to rsa)', `p=${p}`, true],
      ['an RSAPublicKey (PKCS#1) in p=', `v=DKIM1; k=rsa; p=${pkcs1}`, true],
      [
        'another key',
        dkimRecord(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey),
        'other-key',
      ],
      ['another key type', other, 'other-type'],
      ['a revoked key', 'v=DKIM1; k=rsa; p=', 'revoked'],
      ['no p=', 'v=DKIM1; k=rsa', 'no-key'],
      ['v=DKIM2', `v=DKIM2; p=${p}`, 'not-dkim'],
      ['a tag twice', `v=DKIM1; p=${p}; p=${p}`, 'malformed'],
      ['p= not base64', 'v=DKIM1; p=abc$def', 'malformed'],
      ['an SPF record', 'v=spf1 -all', 'not-dkim'],
    ];
    for (const [name, published, want] of table) {
      const got = compareRecord(published, ours);
      assert.equal(got.matches ? true : got.reason, want, name);
      assert.equal(publishedMatches(published, ours), want === true, name);
    }
  });
});
