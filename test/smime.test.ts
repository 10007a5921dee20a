/**
 * S/MIME signing against the real oracle: a CA made with the openssl CLI
 * (test/support/test-ca.ts), a corpus of messages signed and verified one by one with both
 * `openssl smime -verify -purpose smimesign` and `openssl cms -verify`, the content openssl
 * extracts compared with the entity we signed, and postal-mime reading the same text and
 * attachments out of the signed message as out of the original. Then what must fail: a
 * tampered body, a missing chain, and every credential refusal with its code.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import PostalMime from 'postal-mime';
import { ERROR_CODES, GridpostError } from '../src/errors/catalogue.js';
import { canonicalCrlf, sevenBitEntity } from '../src/signing/mime-7bit.js';
import {
  decodeQuotedPrintable,
  encodeQuotedPrintable,
  encodedWords,
  extendedParam,
} from '../src/signing/mime-encode.js';
import { joinEntity, splitEntity } from '../src/signing/mime-header.js';
import {
  expiryWarning,
  inspectCredential,
  readCredential,
  restoreCredential,
  signingRefusal,
  type SmimeCredential,
} from '../src/signing/smime-credential.js';
import { firstMailbox, smimeSign } from '../src/signing/smime-sign.js';
import { signForPlan } from '../src/signing/signing.js';
import { makeTestCa, opensslVerify, type TestCa } from './support/test-ca.js';

const run = promisify(execFile);
const ALICE = 'alice@example.org';
const DAY_MS = 86_400_000;

// ---------------------------------------------------------------------------------------
// The corpus: what certified accounts send, from the plainest to the awkward.

const OUTER = [
  'Received: from client.test ([127.0.0.1]) by engine.test; Fri, 04 Dec 2026 10:00:00 +0000',
  'From: Alice Example <alice@example.org>',
  'To: Bob <bob@example.net>',
  'Date: Fri, 04 Dec 2026 10:00:00 +0000',
  'Message-ID: <corpus@example.org>',
  'List-Unsubscribe: <https://example.org/u/1>',
];

function message(lines: string[], eol = '\r\n'): Buffer {
  return Buffer.from([...OUTER, ...lines].join(eol), 'utf8');
}

function base64Lines(data: Buffer, width = 76): string[] {
  return data.toString('base64').match(new RegExp(`.{1,${width}}`, 'g'))!;
}

const PNG = randomBytes(1800);
const PDF = randomBytes(5000);
const TAR = randomBytes(3000);

const CORPUS: { name: string; message: Buffer }[] = [
  {
    name: 'plain 7-bit text',
    message: message([
      ...['Subject: plain', 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=us-ascii'],
      ...['', 'Hello Bob,', '', 'a plain note.', '', 'Alice', ''],
    ]),
  },
  {
    name: '8-bit UTF-8 text with no transfer encoding',
    message: message([
      ...['Subject: utf-8', 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8'],
      ...['', 'Grüße aus Köln, 東京 und Zürich ✓', 'Ünïcödé on every line — ½ €', ''],
    ]),
  },
  {
    name: 'lines over 998 octets',
    message: message([
      ...['Subject: long', 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=us-ascii'],
      ...['', 'short line', 'x'.repeat(2500), 'y'.repeat(998), 'z'.repeat(999), ''],
    ]),
  },
  {
    name: 'multipart/alternative with 8-bit text and HTML',
    message: message([
      ...['Subject: alternative', 'MIME-Version: 1.0'],
      'Content-Type: multipart/alternative; boundary="alt-1"',
      ...['', 'This is a multi-part message in MIME format.', '--alt-1'],
      ...['Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit', ''],
      ...['Prix : 12 € — déjà payé', '', '--alt-1'],
      ...['Content-Type: text/html; charset=utf-8', 'Content-Transfer-Encoding: 8bit', ''],
      ...['<p>Prix&nbsp;: <b>12 €</b> — déjà payé</p>', '--alt-1--', ''],
    ]),
  },
  {
    name: 'multipart/mixed with a base64 attachment',
    message: message([
      ...['Subject: mixed', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary=mix'],
      ...['', '--mix', 'Content-Type: text/plain; charset=utf-8', ''],
      ...['Anbei die Datei für Sie.', '', '--mix'],
      'Content-Type: application/x-tar; name="files.tar"',
      ...['Content-Disposition: attachment; filename="files.tar"'],
      ...['Content-Transfer-Encoding: base64', '', ...base64Lines(TAR), '--mix--', ''],
    ]),
  },
  {
    name: 'nested multiparts with inline image and an unwrapped base64 line',
    message: message([
      ...['Subject: nested', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed;'],
      ...[' boundary="outer"', '', '--outer', 'Content-Type: multipart/alternative;'],
      ...[' boundary="inner-alt"', '', '--inner-alt', 'Content-Type: text/plain; charset=utf-8'],
      ...['Content-Transfer-Encoding: 8bit', '', 'Schöne Grüße', '', '--inner-alt'],
      ...['Content-Type: multipart/related; boundary="rel"', '', '--rel'],
      ...['Content-Type: text/html; charset=utf-8', 'Content-Transfer-Encoding: 8bit', ''],
      ...['<p>Schöne Grüße <img src="cid:logo@example.org"></p>', '--rel'],
      ...['Content-Type: image/png', 'Content-ID: <logo@example.org>'],
      ...['Content-Transfer-Encoding: base64', '', ...base64Lines(PNG), '--rel--', ''],
      ...['--inner-alt--', '', '--outer', 'Content-Type: application/pdf'],
      ...['Content-Disposition: attachment; filename=report.pdf'],
      ...['Content-Transfer-Encoding: base64', '', PDF.toString('base64'), '--outer--', ''],
    ]),
  },
  {
    name: 'labelled Content-Transfer-Encoding: 8bit with 8-bit text',
    message: message([
      ...['Subject: 8bit', 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8'],
      ...['Content-Transfer-Encoding: 8bit', '', 'naïve café', ''],
    ]),
  },
  {
    name: 'labelled Content-Transfer-Encoding: 8bit with 7-bit text',
    message: message([
      ...['Subject: 8bit label', 'MIME-Version: 1.0', 'Content-Type: text/plain'],
      ...['Content-Transfer-Encoding: 8bit', '', 'only ascii here', ''],
    ]),
  },
  {
    name: 'no MIME header fields, bare LF line ends, 8-bit body',
    message: message(['Subject: bare', '', 'Grüße with LF only', ''], '\n'),
  },
  {
    name: 'message/rfc822 attachment with an 8-bit body and a UTF-8 subject',
    message: message([
      ...['Subject: forwarded', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary=f'],
      ...['', '--f', 'Content-Type: text/plain', '', 'See below.', '', '--f'],
      ...['Content-Type: message/rfc822', 'Content-Disposition: attachment', ''],
      ...['From: carol@example.com', 'Subject: Grüße aus Köln', 'MIME-Version: 1.0'],
      ...['Content-Type: text/plain; charset=utf-8', '', 'Tschüß', '--f--', ''],
    ]),
  },
  {
    name: 'message/rfc822 attachment with a UTF-8 address',
    message: message([
      ...['Subject: forwarded intl', 'MIME-Version: 1.0'],
      ...['Content-Type: multipart/mixed; boundary=g', '', '--g', 'Content-Type: text/plain'],
      ...['', 'See below.', '', '--g', 'Content-Type: message/rfc822', ''],
      ...['From: Jörg <jörg@bücher.example>', 'Subject: hallo', 'MIME-Version: 1.0'],
      ...['Content-Type: text/plain; charset=utf-8', '', 'Grüße', '--g--', ''],
    ]),
  },
  {
    name: 'an attachment with an 8-bit file name',
    message: message([
      ...['Subject: file name', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary=h'],
      ...['', '--h', 'Content-Type: text/plain', '', 'Attached.', '', '--h'],
      ...['Content-Type: application/pdf; name="Übersicht März.pdf"'],
      ...['Content-Disposition: attachment; filename="Übersicht März.pdf"'],
      ...['Content-Transfer-Encoding: base64', '', ...base64Lines(PDF.subarray(0, 600))],
      ...['--h--', ''],
    ]),
  },
  {
    name: 'multipart/digest whose parts default to message/rfc822',
    message: message([
      ...['Subject: digest', 'MIME-Version: 1.0', 'Content-Type: multipart/digest; boundary=d'],
      ...['', '--d', '', 'From: one@example.com', 'Subject: first', ''],
      ...['Erste Nachricht', '', '--d', '', 'From: two@example.com'],
      ...['Subject: second', '', 'second message', '--d--', ''],
    ]),
  },
  {
    name: 'From lines, trailing blanks and lone dots in 7-bit text',
    message: message([
      ...['Subject: mbox', 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=us-ascii'],
      ...['', 'From the start of a line', 'trailing blank ', 'trailing tab\t', '.', '-- '],
      ...['Alice', ''],
    ]),
  },
  {
    name: 'an 8-bit application part',
    message: message([
      ...['Subject: octets', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary=o'],
      ...['', '--o', 'Content-Type: application/octet-stream', 'Content-Transfer-Encoding: 8bit'],
      ...['', 'raw \u00ff\u00fe octets', '--o--', ''],
    ]),
  },
];

// ---------------------------------------------------------------------------------------
// The oracle.

/** The first part of our multipart/signed, cut out by its boundary (not by our parser). */
function firstPart(signed: Buffer): Buffer {
  const text = signed.toString('latin1');
  const boundary = /boundary="([^"]+)"/.exec(text)![1]!;
  const start = text.indexOf(`\r\n--${boundary}\r\n`) + boundary.length + 6;
  const end = text.indexOf(`\r\n--${boundary}\r\n`, start);
  return signed.subarray(start, end);
}

function bodyOf(message: Buffer): Buffer {
  return message.subarray(message.indexOf('\r\n\r\n') + 4);
}

/** What a reader sees: subject, text, HTML and attachments (embedded messages read too). */
async function meaning(raw: Buffer): Promise<unknown> {
  const email = await PostalMime.parse(raw, { forceRfc822Attachments: true });
  const attachments = [];
  for (const a of email.attachments) {
    if (a.mimeType === 'application/pkcs7-signature') continue;
    // The same quirk: an 8bit part's content gains the line end before the boundary.
    const content = trimLineEnd(Buffer.from(a.content as ArrayBuffer));
    const inner = a.mimeType.startsWith('message/') ? await meaning(content) : null;
    attachments.push({
      filename: a.filename,
      contentId: a.contentId,
      inner,
      content: inner ? null : content,
    });
  }
  // postal-mime counts the CRLF before a boundary as the part's (RFC 2046 §5.1.1 says not).
  const { subject, text, html } = email;
  return { subject, text: text?.trimEnd(), html: html?.trimEnd(), attachments };
}

function trimLineEnd(data: Buffer): Buffer {
  const n = data.at(-1) === 10 ? (data.at(-2) === 13 ? 2 : 1) : 0;
  return data.subarray(0, data.length - n);
}

// ---------------------------------------------------------------------------------------

describe('S/MIME signing, verified by openssl', () => {
  let ca: TestCa;
  let cred: SmimeCredential;
  let dir: string;
  let now: Date;

  before(async () => {
    ca = await makeTestCa();
    now = new Date();
    cred = readCredential({ pem: ca.alice.certPem + ca.intermediatePem + ca.alice.keyPem }, ALICE);
    dir = mkdtempSync(join(tmpdir(), 'gridpost-smime-'));
  });
  after(() => {
    ca.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  CORPUS.forEach((sample, i) => {
    it(`${sample.name}: openssl smime and cms verify it and extract what we signed`, async () => {
      const signed = smimeSign(sample.message, cred, now);
      const file = join(dir, `corpus-${i}.eml`);
      writeFileSync(file, signed);
      const entity = firstPart(signed);
      for (const tool of ['smime', 'cms'] as const) {
        const verdict = await opensslVerify(tool, file, ca);
        assert.ok(verdict.ok, `${tool}: ${verdict.stderr}`);
        assert.match(verdict.stderr, /Verification successful/);
        assert.ok(verdict.content.equals(entity), `${tool} extracted other bytes than we signed`);
      }
    });

    it(`${sample.name}: the signed body is 7-bit, CRLF, lines of at most 998 octets`, () => {
      const body = bodyOf(smimeSign(sample.message, cred, now));
      assert.ok(
        body.every((o) => o > 0 && o < 128),
        'an octet outside 1..127',
      );
      const text = body.toString('latin1');
      assert.equal(/(?<!\r)\n|\r(?!\n)/.test(text), false, 'a bare CR or LF');
      const longest = Math.max(...text.split('\r\n').map((l) => l.length));
      assert.ok(longest <= 998, `a line of ${longest} octets`);
    });

    it(`${sample.name}: a reader finds the same text and attachments as before`, async () => {
      const signed = smimeSign(sample.message, cred, now);
      assert.deepEqual(await meaning(signed), await meaning(canonicalCrlf(sample.message)));
    });
  });

  it('keeps the outer header fields in order, before MIME-Version and the multipart/signed type', () => {
    const signed = smimeSign(CORPUS[3]!.message, cred, now).toString('latin1');
    const header = signed.slice(0, signed.indexOf('\r\n\r\n'));
    const names = header
      .split('\r\n')
      .filter((l) => /^\S/.test(l))
      .map((l) => l.split(':')[0]);
    const want = ['Received', 'From', 'To', 'Date', 'Message-ID', 'List-Unsubscribe', 'Subject'];
    assert.deepEqual(names, [...want, 'MIME-Version', 'Content-Type']);
    const type = /Content-Type: multipart\/signed; protocol="application\/pkcs7-signature";\r\n/;
    assert.match(header, type);
    assert.match(header, /\r\n micalg=sha-256; boundary="=_gridpost_smime_[0-9a-f]{24}"$/);
    for (const line of OUTER) assert.ok(header.includes(line + '\r\n'), line);
  });

  it('keeps an entity that is already safe byte for byte', () => {
    const content = [
      ...['Content-Type: multipart/alternative;', '\tboundary="=_safe"', '', 'Preamble.'],
      ...['--=_safe', 'Content-Type: text/plain; charset=us-ascii', '', 'Hello.', ''],
      ...['--=_safe', 'Content-Type: text/html; charset=utf-8'],
      ...['Content-Transfer-Encoding: quoted-printable', '', '<p>Gr=C3=BC=C3=9Fe</p>'],
      ...['--=_safe', 'Content-Type: image/png', 'Content-Transfer-Encoding: base64', ''],
      ...[...base64Lines(PNG), '--=_safe--', ''],
    ].join('\r\n');
    const sample = message(['Subject: safe', 'MIME-Version: 1.0', content]);
    assert.equal(firstPart(smimeSign(sample, cred, now)).toString('latin1'), content);
  });

  it('signs a detached SignedData: SHA-256, the three signed attributes, signer and chain', async () => {
    const at = new Date(cred.info.notBefore.getTime() + 65_000);
    const signed = smimeSign(CORPUS[0]!.message, cred, at);
    const text = signed.toString('latin1');
    const start = text.indexOf('Content-Description: S/MIME Cryptographic Signature\r\n\r\n');
    const base64 = text.slice(text.indexOf('\r\n\r\n', start) + 4, text.lastIndexOf('\r\n--'));
    const p7s = Buffer.from(base64, 'base64');
    writeFileSync(join(dir, 'sig.der'), p7s);
    const { stdout } = await run('openssl', [
      'cms',
      '-cmsout',
      '-print',
      '-inform',
      'DER',
      '-in',
      join(dir, 'sig.der'),
    ]);
    assert.match(stdout, /eContent: <ABSENT>/);
    assert.match(stdout, /algorithm: sha256/);
    for (const attr of ['contentType', 'signingTime', 'messageDigest'])
      assert.match(stdout, new RegExp(`object: ${attr}`));
    assert.ok(stdout.includes(`UTCTIME:${opensslTime(at)}`), `signingTime ${opensslTime(at)}`);
    assert.equal(stdout.match(/cert_info:/g)?.length, 2, 'the signer and the intermediate');
  });

  it('fails verification once one character of the signed entity is changed', async () => {
    const signed = smimeSign(CORPUS[1]!.message, cred, now).toString('latin1');
    const tampered = signed.replace('Gr=C3=BC=C3=9Fe', 'Gr=C3=BC=C3=9Fa');
    assert.notEqual(tampered, signed);
    const file = join(dir, 'tampered.eml');
    writeFileSync(file, tampered, 'latin1');
    for (const tool of ['smime', 'cms'] as const) {
      const verdict = await opensslVerify(tool, file, ca);
      assert.equal(verdict.ok, false, `${tool} accepted a tampered message`);
      assert.match(verdict.stderr, /digest failure|Verification failure/i);
    }
  });

  it('still verifies with header fields added on top, as DKIM signing does', async () => {
    const signed = smimeSign(CORPUS[5]!.message, cred, now);
    const file = join(dir, 'with-dkim.eml');
    const added = 'DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=s1; b=AAAA\r\n';
    writeFileSync(file, Buffer.concat([Buffer.from(added), signed]));
    for (const tool of ['smime', 'cms'] as const) {
      assert.ok((await opensslVerify(tool, file, ca)).ok, tool);
    }
  });

  it('fails verification when the chain certificate was not given with the credential', async () => {
    const bare = readCredential({ pem: ca.alice.certPem + ca.alice.keyPem }, ALICE);
    const file = join(dir, 'no-chain.eml');
    writeFileSync(file, smimeSign(CORPUS[0]!.message, bare, now));
    const verdict = await opensslVerify('smime', file, ca);
    assert.equal(verdict.ok, false);
    assert.match(verdict.stderr, /unable to get local issuer certificate/);
  });

  it('signs with an ECDSA (P-256) certificate: ecdsa-with-SHA256, verified by openssl', async () => {
    const ec = readCredential({ pem: ca.ec.certPem + ca.intermediatePem + ca.ec.keyPem }, ALICE);
    assert.equal(ec.info.keyType, 'ec');
    const file = join(dir, 'ecdsa.eml');
    writeFileSync(file, smimeSign(CORPUS[0]!.message, ec, now));
    for (const tool of ['smime', 'cms'] as const) {
      const verdict = await opensslVerify(tool, file, ca);
      assert.ok(verdict.ok, `${tool}: ${verdict.stderr}`);
    }
    const { stdout } = await run('openssl', ['cms', '-cmsout', '-print', '-in', file]);
    assert.match(stdout, /algorithm: ecdsa-with-SHA256/);
  });

  it('signs with a PKCS#12 credential as with the PEM one', async () => {
    const p12 = readCredential({ pkcs12: ca.aliceP12, password: ca.p12Password }, ALICE);
    const file = join(dir, 'p12.eml');
    writeFileSync(file, smimeSign(CORPUS[6]!.message, p12, now));
    for (const tool of ['smime', 'cms'] as const) {
      assert.ok((await opensslVerify(tool, file, ca)).ok, tool);
    }
  });

  it('refuses to sign for a From address the certificate does not list, or when expired', () => {
    const fromBob = Buffer.from('From: bob@example.net\r\nSubject: x\r\n\r\nhi\r\n');
    assert.throws(() => smimeSign(fromBob, cred, now), hasCode('E_CERT_ADDRESS_MISMATCH'));
    const later = new Date(cred.info.notAfter.getTime() + 1000);
    assert.throws(() => smimeSign(CORPUS[0]!.message, cred, later), hasCode('E_CERT_EXPIRED'));
    const noFrom = Buffer.from('Subject: x\r\n\r\nhi\r\n');
    assert.throws(() => smimeSign(noFrom, cred, now), hasCode('E_BAD_MESSAGE'));
  });

  it('signs on a signing worker as at intake: openssl verifies it; a refusal keeps its code', async () => {
    const plan = { maildomain: 'example.org', dkim: [], account: cred };
    const { body, signatures } = await signForPlan(CORPUS[0]!.message, plan, now);
    assert.equal(signatures.smime?.address, ALICE);
    const file = join(dir, 'worker.eml');
    writeFileSync(file, body);
    for (const tool of ['smime', 'cms'] as const) {
      assert.ok((await opensslVerify(tool, file, ca)).ok, tool);
    }
    const later = new Date(cred.info.notAfter.getTime() + 1000);
    await assert.rejects(signForPlan(CORPUS[0]!.message, plan, later), hasCode('E_CERT_EXPIRED'));
  });
});

/** A time as openssl prints it: "Dec  4 10:11:12 2026 GMT". */
function opensslTime(d: Date): string {
  const [, day, month, year, time] = d.toUTCString().split(' ') as string[];
  return `${month} ${day!.replace(/^0/, ' ')} ${time} ${year} GMT`;
}

function hasCode(code: string) {
  return (err: unknown) => {
    assert.ok(err instanceof GridpostError, String(err));
    assert.equal(err.code, code, err.message);
    return true;
  };
}

// ---------------------------------------------------------------------------------------

describe('certified account credentials', () => {
  let ca: TestCa;
  let now: Date;

  before(async () => {
    ca = await makeTestCa();
    now = new Date();
  });
  after(() => ca.remove());

  it('reports what openssl reports of the certificate', async () => {
    const info = inspectCredential({
      pem: ca.alice.keyPem + ca.intermediatePem + ca.alice.certPem,
    });
    const x509 = async (...args: string[]) =>
      (await run('openssl', ['x509', '-noout', ...args, '-in', ca.alice.certFile])).stdout.trim();
    assert.equal(`sha256 Fingerprint=${info.fingerprint}`, await x509('-fingerprint', '-sha256'));
    assert.equal(`serial=${info.serial}`, await x509('-serial'));
    const end = (await x509('-enddate')).replace('notAfter=', '');
    assert.equal(info.notAfter.getTime(), new Date(end).getTime());
    assert.deepEqual(info.addresses, [ALICE]);
    assert.equal(info.subject, 'CN=alice, emailAddress=alice@example.org, O=Gridpost Test');
    assert.equal(info.issuer, 'CN=Gridpost Test Intermediate, O=Gridpost Test');
    assert.deepEqual([info.keyType, info.keyBits, info.keyMatches], ['rsa', 2048, true]);
    assert.equal(info.emailProtection, true);
    assert.deepEqual(
      info.chain.map((c) => c.subject),
      ['CN=Gridpost Test Intermediate, O=Gridpost Test'],
    );
  });

  it('reads PEM in any order, separate or together, and PKCS#12, to the same credential', () => {
    const inputs = [
      { pem: ca.alice.certPem + ca.intermediatePem + ca.alice.keyPem },
      { pem: [ca.alice.keyPem, ca.caPem, ca.intermediatePem, ca.alice.certPem].join('\n') },
      { pkcs12: ca.aliceP12, password: ca.p12Password },
    ];
    const creds = inputs.map((input) => readCredential(input, ALICE, now));
    for (const c of creds) {
      assert.equal(c.info.fingerprint, creds[0]!.info.fingerprint);
      assert.equal(c.chainPem[0], ca.intermediatePem.replace(/\r\n/g, '\n'));
    }
    assert.equal(creds[1]!.chainPem.length, 2, 'intermediate, then root');
  });

  it('reads an encrypted PEM key with its password', () => {
    const key = restoreCredential(
      { address: ALICE, certificatePem: ca.alice.certPem, chainPem: '' },
      ca.alice.keyPem,
    ).privateKey;
    const encrypted = key.export({
      type: 'pkcs8',
      format: 'pem',
      cipher: 'aes-256-cbc',
      passphrase: 'pw',
    }) as string;
    const pem = ca.alice.certPem + encrypted;
    assert.equal(readCredential({ pem, password: 'pw' }, ALICE).info.keyMatches, true);
    assert.throws(() => readCredential({ pem }, ALICE), hasCode('E_CERT_INVALID'));
    assert.throws(() => readCredential({ pem, password: 'no' }, ALICE), /wrong password/);
  });

  const refusals: [string, () => Parameters<typeof readCredential>, string, RegExp][] = [
    [
      'an expired certificate',
      () => [{ pem: ca.expired.certPem + ca.expired.keyPem }, ALICE],
      'E_CERT_EXPIRED',
      /expired on \d{4}-\d\d-\d\dT.*renew it with its issuer/,
    ],
    [
      'a certificate not valid yet',
      () => [{ pem: ca.notYetValid.certPem + ca.notYetValid.keyPem }, ALICE],
      'E_CERT_NOT_YET_VALID',
      /valid only from .*check this server's clock/,
    ],
    [
      "another address's certificate",
      () => [{ pem: ca.bob.certPem + ca.bob.keyPem }, ALICE],
      'E_CERT_ADDRESS_MISMATCH',
      /is for bob@example\.net, not alice@example\.org/,
    ],
    [
      "another certificate's key",
      () => [{ pem: ca.alice.certPem + ca.bob.keyPem }, ALICE],
      'E_CERT_KEY_MISMATCH',
      /does not belong to the private key/,
    ],
    [
      'an Ed25519 certificate',
      () => [{ pem: ca.ed25519.certPem + ca.ed25519.keyPem }, ALICE],
      'E_CERT_UNSUPPORTED',
      /ED25519 key; only RSA and ECDSA keys/,
    ],
    [
      'a key usage without digitalSignature or nonRepudiation',
      () => [{ pem: ca.encipherOnly.certPem + ca.encipherOnly.keyPem }, ALICE],
      'E_CERT_PURPOSE',
      /is not for signing email/,
    ],
    [
      'a 1024-bit RSA key',
      () => [{ pem: ca.small.certPem + ca.small.keyPem }, ALICE],
      'E_CERT_UNSUPPORTED',
      /1024-bit RSA key; at least 2048/,
    ],
    [
      'a TLS server certificate',
      () => [{ pem: ca.tlsOnly.certPem + ca.tlsOnly.keyPem }, ALICE],
      'E_CERT_PURPOSE',
      /not for signing email/,
    ],
    [
      'garbage',
      () => [{ pem: 'hello, I am not a certificate' }, ALICE],
      'E_CERT_INVALID',
      /no PEM block/,
    ],
    [
      'a truncated certificate',
      () => [
        { pem: ca.alice.certPem.slice(0, 300) + '\n-----END CERTIFICATE-----\n' + ca.alice.keyPem },
        ALICE,
      ],
      'E_CERT_INVALID',
      /certificate 1 is damaged/,
    ],
    [
      'a key without certificate',
      () => [{ pem: ca.alice.keyPem }, ALICE],
      'E_CERT_INVALID',
      /no certificate/,
    ],
    [
      'two keys',
      () => [{ pem: ca.alice.certPem + ca.alice.keyPem + ca.bob.keyPem }, ALICE],
      'E_CERT_INVALID',
      /2 private keys/,
    ],
    [
      'a PKCS#12 file with the wrong password',
      () => [{ pkcs12: ca.aliceP12, password: 'wrong' }, ALICE],
      'E_CERT_INVALID',
      /wrong password for the PKCS#12 file/,
    ],
    [
      'a PKCS#12 file without its password',
      () => [{ pkcs12: ca.aliceP12 }, ALICE],
      'E_CERT_INVALID',
      /wrong password/,
    ],
    [
      'PKCS#12 garbage',
      () => [{ pkcs12: randomBytes(500), password: 'x' }, ALICE],
      'E_CERT_INVALID',
      /not a readable PKCS#12 file/,
    ],
    ['nothing at all', () => [{}, ALICE], 'E_CERT_INVALID', /either PEM text or a PKCS#12 file/],
  ];
  for (const [name, args, code, text] of refusals) {
    it(`refuses ${name} with ${code}, saying what to do`, () => {
      const err = catchError(() => readCredential(...args()));
      assert.equal(err.code, code, err.message);
      assert.match(err.message, text);
      assert.ok(ERROR_CODES[err.code].fix.length > 20);
    });
  }

  it('says per message whether the credential may sign, and why not', () => {
    const cred = readCredential(
      { pem: ca.alice.certPem + ca.intermediatePem + ca.alice.keyPem },
      ALICE,
    );
    assert.equal(signingRefusal(cred, ALICE, now), null);
    assert.equal(
      signingRefusal(cred, 'alice@EXAMPLE.ORG', now),
      null,
      'domains are case-insensitive',
    );
    assert.equal(
      signingRefusal(cred, 'Alice@example.org', now)?.code,
      'E_CERT_ADDRESS_MISMATCH',
      'local parts are not (RFC 5280 §4.2.1.6)',
    );
    const expired = signingRefusal(cred, ALICE, new Date(cred.info.notAfter.getTime() + 1000));
    assert.equal(expired?.code, 'E_CERT_EXPIRED');
    assert.match(expired!.text, /^The certificate of alice@example\.org expired on .*: renew it/);
    const early = signingRefusal(cred, ALICE, new Date(cred.info.notBefore.getTime() - 1000));
    assert.equal(early?.code, 'E_CERT_NOT_YET_VALID');
  });

  it('warns when the certificate expires within the given days, or has expired', () => {
    const cred = readCredential(
      { pem: ca.alice.certPem + ca.intermediatePem + ca.alice.keyPem },
      ALICE,
    );
    assert.equal(expiryWarning(cred, now), null);
    const soon = new Date(cred.info.notAfter.getTime() - 10 * DAY_MS);
    assert.match(
      expiryWarning(cred, soon) ?? '',
      /^The certificate of alice@example\.org expires on .*, in 10 days: renew it/,
    );
    assert.match(expiryWarning(cred, now, 400) ?? '', /in 36[56] days/);
    const after = new Date(cred.info.notAfter.getTime() + DAY_MS);
    assert.match(
      expiryWarning(cred, after) ?? '',
      /^The certificate of alice@example\.org expired on/,
    );
  });

  it('restores a stored credential without judging its dates', () => {
    const row = {
      address: ALICE,
      certificatePem: ca.expired.certPem,
      chainPem: ca.intermediatePem,
    };
    const cred = restoreCredential(row, ca.expired.keyPem);
    assert.equal(signingRefusal(cred, ALICE, now)?.code, 'E_CERT_EXPIRED');
    assert.throws(() => restoreCredential(row, ca.bob.keyPem), hasCode('E_CERT_KEY_MISMATCH'));
  });
});

function catchError(fn: () => unknown): GridpostError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof GridpostError, String(err));
    return err;
  }
  assert.fail('no error thrown');
}

// ---------------------------------------------------------------------------------------

describe('the 7-bit pass and its encodings', () => {
  const qp: [string, string, string][] = [
    ['8-bit octets', 'café', 'caf=C3=A9'],
    ['an equals sign', 'a=b', 'a=3Db'],
    ['a trailing blank', 'end \r\nnext', 'end=20\r\nnext'],
    ['a line-initial From', 'From me\r\nFrom', '=46rom me\r\nFrom'],
    ['a line-initial dot and dash', '.\r\n-- \r\n', '=2E\r\n=2D-=20\r\n'],
    ['a long line, cut with soft breaks', 'a'.repeat(80), 'a'.repeat(75) + '=\r\n' + 'aaaaa'],
    ['an escape kept whole at a soft break', 'a'.repeat(74) + 'é', 'a'.repeat(74) + '=\r\n=C3=A9'],
  ];
  for (const [name, input, want] of qp) {
    it(`quoted-printable: ${name}`, () => {
      const encoded = encodeQuotedPrintable(Buffer.from(input));
      assert.equal(encoded.toString('latin1'), want);
      assert.equal(decodeQuotedPrintable(encoded).toString(), input);
    });
  }

  it('encodes unstructured text as encoded words of at most 75 characters', () => {
    const words = encodedWords(Buffer.from('Grüße '.repeat(20)));
    for (const w of words.split('\r\n ')) assert.ok(w.length <= 75 && /^=\?utf-8\?B\?/.test(w), w);
    const decoded = words
      .split('\r\n ')
      .map((w) => Buffer.from(w.slice(10, -2), 'base64').toString());
    assert.equal(decoded.join(''), 'Grüße '.repeat(20));
  });

  it('cuts long RFC 2231 values into continuations without splitting an escape', () => {
    const pieces = extendedParam('filename', Buffer.from('é'.repeat(40)));
    assert.ok(pieces.length > 1);
    pieces.forEach((p, i) => assert.match(p, new RegExp(`^filename\\*${i}\\*=`)));
    const value = pieces.map((p) => p.slice(p.indexOf('=') + 1)).join('');
    assert.equal(decodeURIComponent(value.replace("utf-8''", '')), 'é'.repeat(40));
  });

  it('relabels 7-bit content labelled 8bit, and leaves safe entities alone', () => {
    const labelled = splitEntity(Buffer.from('Content-Transfer-Encoding: 8bit\r\n\r\nascii\r\n'));
    const out = sevenBitEntity(labelled);
    assert.equal(
      joinEntity(out.fields, out.body).toString(),
      'Content-Transfer-Encoding: 7bit\r\n\r\nascii\r\n',
    );
    const plain = Buffer.from('Content-Type: text/plain;\r\n\tcharset="us-ascii"\r\n\r\nascii\r\n');
    const kept = sevenBitEntity(splitEntity(plain));
    assert.ok(joinEntity(kept.fields, kept.body).equals(plain));
  });

  it('refuses 8-bit data under a transfer encoding it does not know', () => {
    const odd = splitEntity(Buffer.from('Content-Transfer-Encoding: x-uuencode\r\n\r\nbégin\r\n'));
    assert.throws(() => sevenBitEntity(odd), hasCode('E_BAD_MESSAGE'));
  });

  const froms: [string, string | null][] = [
    ['alice@example.org', 'alice@example.org'],
    ['Alice Example <alice@example.org>', 'alice@example.org'],
    ['"Example, Alice" <alice@example.org>, bob@example.net', 'alice@example.org'],
    ['alice@example.org (Alice)', 'alice@example.org'],
    ['"a <b@c>" <alice@example.org>', 'alice@example.org'],
    ['undisclosed', null],
  ];
  for (const [value, want] of froms) {
    it(`reads the From mailbox of ${JSON.stringify(value)}`, () => {
      assert.equal(firstMailbox(value), want);
    });
  }
});
