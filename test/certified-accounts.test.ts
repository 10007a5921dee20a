// Certified accounts end to end: a certificate and key imported through the API (PKCS#12) make
// the engine S/MIME-sign mail from that address before DKIM; what the receiver gets verifies
// with `openssl smime -verify` and `openssl cms -verify` against the test CA, and with dkimpy.
// Expired, future and foreign certificates are refused with their codes; keys are never shown.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestWorld, type Receiver } from '../src/testworld/index.js';
import {
  api,
  injectSmtp,
  simpleMessage,
  startEngine,
  waitFor,
  waitForRecord,
  type TestEngine,
} from './support/harness.js';
import { makeTestCa, opensslVerify, type TestCa } from './support/test-ca.js';
import { openStore } from '../src/spool/store.js';
import { KeyFiles } from '../src/maildomains/key-files.js';
import { MaildomainStore } from '../src/maildomains/store.js';
import { restoreCredential } from '../src/signing/smime-credential.js';
import { dnsOf, verifyWithDkimpy } from './support/dkim-verifiers.js';

const ALICE = 'alice@example.org';

describe('certified accounts (S/MIME)', () => {
  let world: TestWorld;
  let rx: Receiver;
  let t: TestEngine;
  let ca: TestCa;
  let dir: string;

  before(async () => {
    ca = await makeTestCa();
    dir = mkdtempSync(join(tmpdir(), 'gridpost-smime-'));
    world = await TestWorld.start();
    rx = await world.addProvider(['dest.test']);
    t = await startEngine(world, { maildomains: { certificateWarning: '3650d' } });
    await api(t, 'PUT', '/api/v1/maildomains/example.org', {});
  });
  after(async () => {
    await t.stop();
    await world.stop();
    ca.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses certificates that cannot sign for the address, each with its code', async () => {
    const cases = [
      [ca.expired, 'E_CERT_EXPIRED'],
      [ca.notYetValid, 'E_CERT_NOT_YET_VALID'],
      [ca.bob, 'E_CERT_ADDRESS_MISMATCH'],
    ] as const;
    for (const [signer, code] of cases) {
      const r = await api(t, 'PUT', `/api/v1/accounts/${ALICE}`, {
        pem: signer.certPem + signer.keyPem,
      });
      assert.equal(r.body.error?.code, code, JSON.stringify(r.body));
      assert.ok(r.status >= 400 && r.status < 500);
    }
    const wrongPassword = await api(t, 'PUT', `/api/v1/accounts/${ALICE}`, {
      pkcs12: ca.aliceP12.toString('base64'),
      password: 'wrong',
    });
    assert.equal(wrongPassword.body.error.code, 'E_CERT_INVALID');
    const foreign = await api(t, 'PUT', '/api/v1/accounts/bob@example.net', {
      pem: ca.bob.certPem + ca.bob.keyPem,
    });
    assert.equal(foreign.body.error.code, 'E_NOT_FOUND');
  });

  it('imports a PKCS#12 account and shows the certificate, never the key', async () => {
    const r = await api(t, 'PUT', `/api/v1/accounts/${ALICE}`, {
      pkcs12: ca.aliceP12.toString('base64'),
      password: ca.p12Password,
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.address, ALICE);
    assert.equal(r.body.state, 'expiring'); // certificateWarning is ten years here
    assert.match(r.body.warning, /expires/);
    const listed = await api(t, 'GET', '/api/v1/maildomains/example.org/accounts');
    assert.equal(listed.body.accounts.length, 1);
    const all = JSON.stringify([
      r.body,
      listed.body,
      (await api(t, 'GET', '/api/v1/maildomains')).body,
    ]);
    assert.doesNotMatch(all, /PRIVATE KEY/);
  });

  it('signs mail from the account; openssl smime and cms verify it against the CA', async () => {
    const key = await api(t, 'POST', '/api/v1/maildomains/example.org/keys', {
      selector: 'k1',
      algorithm: 'ed25519',
    });
    world.dns.set(key.body.dns.name, { txt: [key.body.dns.value] });
    await api(t, 'POST', '/api/v1/maildomains/example.org/keys/k1/check');
    const body = simpleMessage(ALICE, 'carol@dest.test', 'Signed', 'Grüße, this is signed.\r\n');
    const r = await injectSmtp(t.smtpPort, ALICE, ['carol@dest.test'], Buffer.from(body, 'utf8'));
    assert.equal(r.data?.code, 250, JSON.stringify(r));
    const m = await waitFor('the signed message', () =>
      rx.messages.find((x) => x.to.includes('carol@dest.test')),
    );
    const text = m.data.toString('latin1');
    assert.match(
      text,
      /Content-Type: multipart\/signed;[\s\S]*protocol="application\/pkcs7-signature"/i,
    );
    assert.match(text, /micalg=sha-256/i);
    const file = join(dir, 'signed.eml');
    writeFileSync(file, m.data);
    const smime = await opensslVerify('smime', file, ca);
    assert.ok(smime.ok, smime.stderr);
    assert.match(smime.content.toString('latin1'), /this is signed/);
    const cms = await opensslVerify('cms', file, ca);
    assert.ok(cms.ok, cms.stderr);
    // DKIM comes after S/MIME and covers it.
    const verdicts = (await verifyWithDkimpy([file], dnsOf(world.dns))).get(file) ?? [];
    assert.equal(verdicts.length, 1);
    assert.ok(verdicts[0]!.pass, verdicts[0]!.detail);
    const d = await waitForRecord(t, 'carol@dest.test', 'Delivery');
    const reception = t.engine.recorder.forMessage(d.messageId).find((x) => x.type === 'Reception');
    assert.ok(reception?.type === 'Reception');
    assert.equal(reception.signatures?.smime?.address, ALICE);
  });

  it('a tampered signed message fails openssl verification', async () => {
    const m = rx.messages.find((x) => x.to.includes('carol@dest.test'))!;
    const file = join(dir, 'tampered.eml');
    writeFileSync(
      file,
      m.data.toString('latin1').replace('this is signed', 'this is forged'),
      'latin1',
    );
    assert.equal((await opensslVerify('smime', file, ca)).ok, false);
  });

  it('leaves other senders of the maildomain unsigned by S/MIME', async () => {
    const body = simpleMessage('dave@example.org', 'erin@dest.test');
    await injectSmtp(t.smtpPort, 'dave@example.org', ['erin@dest.test'], body);
    const m = await waitFor('the plain message', () =>
      rx.messages.find((x) => x.to.includes('erin@dest.test')),
    );
    assert.doesNotMatch(m.data.toString('latin1'), /multipart\/signed/i);
  });

  it('removes an account', async () => {
    const r = await api(t, 'DELETE', `/api/v1/accounts/${ALICE}`);
    assert.equal(r.status, 204);
    const again = await api(t, 'DELETE', `/api/v1/accounts/${ALICE}`);
    assert.equal(again.body.error.code, 'E_NOT_FOUND');
  });
});

describe('a certified account whose certificate expired after import', () => {
  let world: TestWorld;
  let t: TestEngine;
  let ca: TestCa;

  before(async () => {
    ca = await makeTestCa();
    world = await TestWorld.start();
    await world.addProvider(['dest.test']);
    const first = await startEngine(world);
    await api(first, 'PUT', '/api/v1/maildomains/example.org', {});
    await first.stop({ keepData: true });
    // What an import made a year ago looks like now: the row and the 0600 key file of a
    // certificate that has since expired (an import today would refuse it).
    const db = openStore(first.dataDir);
    const credential = restoreCredential(
      { address: ALICE, certificatePem: ca.expired.certPem, chainPem: ca.intermediatePem },
      ca.expired.keyPem,
    );
    const keyFile = KeyFiles.accountKeyName(ALICE);
    new KeyFiles(first.dataDir).write(keyFile, ca.expired.keyPem);
    new MaildomainStore(db).putAccount({
      address: ALICE,
      domain: 'example.org',
      certificatePem: credential.certificatePem,
      chainPem: credential.chainPem.join(''),
      keyFile,
      subject: credential.info.subject,
      issuer: credential.info.issuer,
      serial: credential.info.serial,
      fingerprint: credential.info.fingerprint,
      notBefore: credential.info.notBefore.getTime(),
      notAfter: credential.info.notAfter.getTime(),
      createdAt: Date.now(),
    });
    db.close();
    t = await startEngine(world, {}, first.dataDir);
  });
  after(async () => {
    await t.stop();
    await world.stop();
    ca.remove();
  });

  it('shows the account expired and refuses its mail rather than send it unsigned', async () => {
    const accounts = await api(t, 'GET', '/api/v1/maildomains/example.org/accounts');
    assert.equal(accounts.body.accounts[0].state, 'expired');
    assert.match(accounts.body.accounts[0].warning, /expired/);
    const body = simpleMessage(ALICE, 'frank@dest.test');
    const r = await injectSmtp(t.smtpPort, ALICE, ['frank@dest.test'], body);
    assert.equal(r.data?.code, 554);
    assert.equal(r.data?.enhanced, '5.7.1');
    assert.match(r.data?.text ?? '', /expired/);
    const http = await api(t, 'POST', '/api/v1/messages', {
      from: ALICE,
      to: 'frank@dest.test',
      subject: 's',
      text: 't',
    });
    assert.equal(http.status, 422);
    assert.equal(http.body.error.code, 'E_SMIME_REFUSED');
  });
});
