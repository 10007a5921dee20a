// Maildomains end to end: keys generated through the API sign only once DNS (the test world's
// server) shows them; rotation hands over with a grace period; what leaves carries signatures
// that dkimpy verifies against the published records; private keys stay in 0600 files and out
// of every answer; the intake checks refuse with coded reasons; the default queue applies.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
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
import { dnsOf, verifyWithDkimpy, verifyWithMailDkim } from './support/dkim-verifiers.js';

const DOMAIN = 'shop.test';

/** Publishes a key's TXT record (as the operator would at their DNS provider). */
function publish(world: TestWorld, key: { dns: { name: string; strings: string[] } }) {
  world.dns.set(key.dns.name, { txt: [key.dns.strings.join('')] });
}

/** The Reception record of the message delivered to `to`. */
async function receptionOf(t: TestEngine, to: string) {
  const d = await waitForRecord(t, to, 'Delivery');
  const r = t.engine.recorder.forMessage(d.messageId).find((x) => x.type === 'Reception');
  assert.ok(r?.type === 'Reception', `no Reception record for ${to}`);
  return r;
}

/** The DKIM-Signature fields of a delivered message: their s= and d= tags. */
function signatures(data: Buffer): { d: string; s: string; a: string }[] {
  const header = data.subarray(0, data.indexOf('\r\n\r\n')).toString('latin1');
  const fields = header.replace(/\r\n[ \t]+/g, ' ').split('\r\n');
  return fields
    .filter((f) => /^dkim-signature:/i.test(f))
    .map((f) => {
      const tag = (t: string) => new RegExp(`[;:\\s]${t}=([^;\\s]+)`).exec(f)?.[1] ?? '';
      return { d: tag('d'), s: tag('s'), a: tag('a') };
    });
}

/** What dkimpy and Mail::DKIM say of each signature of a delivered message. */
async function verifyAll(data: Buffer, world: TestWorld) {
  const dir = mkdtempSync(join(tmpdir(), 'gridpost-md-'));
  try {
    const file = join(dir, 'm.eml');
    writeFileSync(file, data);
    const dns = dnsOf(world.dns);
    const py = (await verifyWithDkimpy([file], dns)).get(file) ?? [];
    const pl = (await verifyWithMailDkim([file], dns)).get(file) ?? [];
    return [...py, ...pl];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('maildomains and domain keys', () => {
  let world: TestWorld;
  let rx: Receiver;
  let t: TestEngine;

  before(async () => {
    world = await TestWorld.start();
    rx = await world.addProvider(['dest.test']);
    t = await startEngine(world, {
      maildomains: { keyGrace: 1 },
      policy: {
        queues: {
          default: { retry: ['1s'], jitter: 0, maxAge: '30s' },
          news: { bulk: true, retry: ['1s'], jitter: 0, maxAge: '30s' },
        },
      },
    });
  });
  after(async () => {
    await t.stop();
    await world.stop();
  });

  /** Sends one message over SMTP; answers the final reply (to DATA, or the refusal before). */
  async function send(to: string, from = `hello@${DOMAIN}`, extra = '') {
    const body = `${extra}${simpleMessage(from, to, 'Hi', 'Hello there.')}`;
    const r = await injectSmtp(t.smtpPort, from, [to], body);
    return { reply: r.data ?? r.recipients[0]!.reply };
  }

  async function delivered(to: string): Promise<Buffer> {
    const m = await waitFor(`${to} at the receiver`, () =>
      rx.messages.find((x) => x.to.includes(to)),
    );
    return m.data;
  }

  it('takes any From while no maildomain exists (checks.fromMaildomain auto)', async () => {
    const r = await send('first@dest.test', 'anyone@elsewhere.test');
    assert.equal(r.reply.code, 250);
  });

  it('adds a maildomain with a default queue and refuses unknown queues', async () => {
    const bad = await api(t, 'PUT', `/api/v1/maildomains/${DOMAIN}`, { defaultQueue: 'nope' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'E_UNKNOWN_QUEUE');
    const ok = await api(t, 'PUT', `/api/v1/maildomains/${DOMAIN}`, { defaultQueue: 'default' });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.domain, DOMAIN);
    assert.match(ok.body.warnings.join(' '), /no active domain key/);
  });

  it('now refuses a From domain that is not a maildomain, with a coded reason', async () => {
    const r = await send('second@dest.test', 'anyone@elsewhere.test');
    assert.equal(r.reply.code, 550);
    assert.match(r.reply.text, /not a maildomain/);
    const http = await api(t, 'POST', '/api/v1/messages', {
      from: 'anyone@elsewhere.test',
      to: 'x@dest.test',
      subject: 's',
      text: 't',
    });
    assert.equal(http.status, 422);
    assert.equal(http.body.error.code, 'E_CHECK_FROM_DOMAIN');
    // Rejected records are accounting, written without holding up the reply: wait for both.
    await waitFor('the Rejected records of both refusals', async () => {
      const events = await api(t, 'GET', '/api/v1/events?after=0&type=Rejected&limit=100');
      const reasons = events.body.events.map(
        (e: { via: string; reason: string }) => `${e.via}:${e.reason}`,
      );
      return (
        reasons.includes('smtp:unknown-maildomain') && reasons.includes('http:unknown-maildomain')
      );
    });
  });

  it('generates a key that stays pending, and unsigned mail warns (dkimAlignment: warn)', async () => {
    const key = await api(t, 'POST', `/api/v1/maildomains/${DOMAIN}/keys`, { selector: 's1' });
    assert.equal(key.status, 201, JSON.stringify(key.body));
    assert.equal(key.body.state, 'pending');
    assert.equal(key.body.bits, 2048);
    assert.equal(key.body.dns.name, `s1._domainkey.${DOMAIN}`);
    assert.match(key.body.dns.value, /^v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]+$/);
    assert.ok(key.body.dns.strings.every((s: string) => s.length <= 255));
    assert.equal(key.body.dns.strings.join(''), key.body.dns.value);
    const r = await send('pending@dest.test');
    assert.equal(r.reply.code, 250);
    assert.equal(signatures(await delivered('pending@dest.test')).length, 0);
    const reception = await receptionOf(t, 'pending@dest.test');
    assert.equal(reception.maildomain, DOMAIN);
    assert.deepEqual(
      reception.warnings?.map((w) => w.check),
      ['dkim-unaligned'],
    );
  });

  it('refuses to activate a key DNS does not show, then activates it once published', async () => {
    const early = await api(t, 'POST', `/api/v1/maildomains/${DOMAIN}/keys/s1/activate`, {});
    assert.equal(early.status, 409);
    assert.equal(early.body.error.code, 'E_KEY_NOT_PUBLISHED');
    const key = (await api(t, 'GET', `/api/v1/maildomains/${DOMAIN}/keys/s1`)).body;
    publish(world, key);
    const checked = await api(t, 'POST', `/api/v1/maildomains/${DOMAIN}/keys/s1/check`);
    assert.equal(checked.body.state, 'active');
    assert.equal(checked.body.published, true);
  });

  it('signs mail from the maildomain and its subdomains; dkimpy verifies it over DNS', async () => {
    await send('signed@dest.test');
    await send('sub@dest.test', `news@mail.${DOMAIN}`);
    for (const to of ['signed@dest.test', 'sub@dest.test']) {
      const data = await delivered(to);
      assert.deepEqual(signatures(data), [{ d: DOMAIN, s: 's1', a: 'rsa-sha256' }]);
      const verdicts = await verifyAll(data, world);
      assert.equal(verdicts.length, 2);
      for (const v of verdicts) assert.ok(v.pass, v.detail);
    }
    const reception = await receptionOf(t, 'signed@dest.test');
    assert.deepEqual(reception.signatures?.dkim, [
      { domain: DOMAIN, selector: 's1', algorithm: 'rsa-sha256' },
    ]);
    assert.equal(reception.warnings, undefined);
  });

  it('dual-signs once an Ed25519 key is active too', async () => {
    const ed = await api(t, 'POST', `/api/v1/maildomains/${DOMAIN}/keys`, {
      selector: 'ed1',
      algorithm: 'ed25519',
    });
    assert.match(ed.body.dns.value, /^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/);
    publish(world, ed.body);
    await api(t, 'POST', `/api/v1/maildomains/${DOMAIN}/keys/ed1/check`);
    await send('dual@dest.test');
    const data = await delivered('dual@dest.test');
    const sigs = signatures(data);
    assert.deepEqual(sigs.map((s) => s.a).sort(), ['ed25519-sha256', 'rsa-sha256']);
    const verdicts = await verifyAll(data, world);
    assert.equal(verdicts.length, 4);
    // Debian 12's Mail::DKIM knows rsa-sha256 only; dkimpy checks the Ed25519 signature.
    const known = verdicts.filter((v) => !/unsupported algorithm ed25519/.test(v.detail));
    assert.equal(known.length, 3);
    for (const v of known) assert.ok(v.pass, v.detail);
  });

  it('rotates: the new key signs once seen in DNS, the old one stays valid for its grace', async () => {
    const next = await api(t, 'POST', `/api/v1/maildomains/${DOMAIN}/keys`, { selector: 's2' });
    await send('before-rotation@dest.test');
    assert.equal(signatures(await delivered('before-rotation@dest.test'))[0]?.s, 's1');
    publish(world, next.body);
    await api(t, 'POST', `/api/v1/maildomains/${DOMAIN}/keys/s2/check`);
    const keys = (await api(t, 'GET', `/api/v1/maildomains/${DOMAIN}/keys`)).body.keys;
    const state = Object.fromEntries(
      keys.map((k: { selector: string; state: string }) => [k.selector, k.state]),
    );
    assert.deepEqual(state, { s1: 'retiring', ed1: 'active', s2: 'active' });
    const s1 = keys.find((k: { selector: string }) => k.selector === 's1');
    assert.ok(Date.parse(s1.retireAt) > Date.now() - 1000);
    await send('after-rotation@dest.test');
    const rsa = signatures(await delivered('after-rotation@dest.test')).find(
      (s) => s.a === 'rsa-sha256',
    );
    assert.equal(rsa?.s, 's2');
    // After the grace period (1 s here) the next round retires s1 and deletes its private key.
    await new Promise((r) => setTimeout(r, 1100));
    await t.engine.maildomains.tick();
    const s1After = (await api(t, 'GET', `/api/v1/maildomains/${DOMAIN}/keys/s1`)).body;
    assert.equal(s1After.state, 'retired');
    const files = readdirSync(join(t.dataDir, 'keys'));
    assert.ok(!files.some((f) => f.includes('-s1.pem')), files.join(' '));
    const deleted = await api(t, 'DELETE', `/api/v1/maildomains/${DOMAIN}/keys/s2`);
    assert.equal(deleted.body.error.code, 'E_KEY_STATE');
  });

  it('keeps private keys in 0600 files and never answers them', async () => {
    const dir = join(t.dataDir, 'keys');
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    for (const f of readdirSync(dir)) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, f);
    const answers = [
      await api(t, 'GET', '/api/v1/maildomains'),
      await api(t, 'GET', `/api/v1/maildomains/${DOMAIN}`),
      await api(t, 'GET', `/api/v1/maildomains/${DOMAIN}/keys`),
      await api(t, 'GET', '/api/v1/openapi.json'),
    ];
    for (const a of answers)
      assert.doesNotMatch(JSON.stringify(a.body), /PRIVATE KEY|privateKey"\s*:\s*"-/);
  });

  it('refuses bulk mail without one-click unsubscribe, and malformed structure', async () => {
    const bulk = await send('bulk@dest.test', `hello@${DOMAIN}`, 'X-Gridpost-Queue: news\r\n');
    assert.equal(bulk.reply.code, 550);
    assert.match(bulk.reply.text, /RFC 8058/);
    const withLink =
      'X-Gridpost-Queue: news\r\nList-Unsubscribe: <https://shop.test/u/1>\r\n' +
      'List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n';
    const ok = await send('bulk2@dest.test', `hello@${DOMAIN}`, withLink);
    assert.equal(ok.reply.code, 250);
    const twoFroms = await send('two@dest.test', `hello@${DOMAIN}`, `From: other@${DOMAIN}\r\n`);
    assert.equal(twoFroms.reply.code, 554);
    assert.match(twoFroms.reply.text, /2 from fields/);
  });

  it('routes to the maildomain default queue when the injection names none', async () => {
    await api(t, 'PUT', `/api/v1/maildomains/${DOMAIN}`, { defaultQueue: 'news' });
    const link =
      'List-Unsubscribe: <https://shop.test/u/2>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n';
    const r = await send('queued@dest.test', `hello@${DOMAIN}`, link);
    assert.equal(r.reply.code, 250);
    const d = await waitForRecord(t, 'queued@dest.test', 'Delivery');
    assert.equal(d.queue, 'news');
    await api(t, 'PUT', `/api/v1/maildomains/${DOMAIN}`, { defaultQueue: null });
  });

  it('counts signatures and maildomains in the metrics, and documents the routes', async () => {
    const text = await (await fetch(`${t.http}/metrics`)).text();
    const count = (kind: string) =>
      Number(
        new RegExp(`^gridpost_signatures_total\\{kind="${kind}"\\} (\\d+)`, 'm').exec(text)?.[1],
      );
    assert.ok(count('dkim-rsa-sha256') >= 5, text);
    assert.ok(count('dkim-ed25519-sha256') >= 2, text);
    assert.match(text, /^gridpost_maildomains\{dns="[a-z]+"\} 1$/m);
    const openapi = (await api(t, 'GET', '/api/v1/openapi.json')).body;
    for (const path of [
      '/api/v1/maildomains/{domain}/keys/{selector}/check',
      '/api/v1/accounts/{address}',
    ]) {
      assert.ok(openapi.paths[path], path);
    }
  });

  it('reports coded errors for bad input', async () => {
    const missing = await api(t, 'GET', '/api/v1/maildomains/nowhere.test');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'E_NOT_FOUND');
    const dup = await api(t, 'POST', `/api/v1/maildomains/${DOMAIN}/keys`, { selector: 's2' });
    assert.equal(dup.body.error.code, 'E_KEY_EXISTS');
    const garbage = await api(t, 'POST', `/api/v1/maildomains/${DOMAIN}/keys`, {
      selector: 'bad',
      privateKey: '-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n',
    });
    assert.equal(garbage.status, 400);
    assert.equal(garbage.body.error.code, 'E_KEY_INVALID');
    const bits = await api(t, 'POST', `/api/v1/maildomains/${DOMAIN}/keys`, {
      selector: 'b',
      bits: 512,
    });
    assert.equal(bits.body.error.code, 'E_VALIDATION');
    for (const bad of ['a..b', '-a.test', 'nodot']) {
      const r = await api(t, 'PUT', `/api/v1/maildomains/${bad}`, {});
      assert.equal(r.body.error?.code, 'E_VALIDATION', bad);
    }
    const signing = await api(t, 'PUT', '/api/v1/maildomains/other.test', {
      signingDomain: 'x.test',
    });
    assert.equal(signing.body.error.code, 'E_VALIDATION');
    assert.equal(signing.body.error.path, 'signingDomain');
    const s9 = await api(t, 'POST', `/api/v1/maildomains/${DOMAIN}/keys`, { selector: 's9' });
    world.dns.set(s9.body.dns.name, { servfail: true });
    const dnsDown = await api(t, 'POST', `/api/v1/maildomains/${DOMAIN}/keys/s9/check`);
    assert.equal(dnsDown.status, 503);
    assert.equal(dnsDown.body.error.code, 'E_DNS_LOOKUP');
  });

  it('deletes a maildomain with its keys and their private key files', async () => {
    await api(t, 'PUT', '/api/v1/maildomains/gone.test', {});
    await api(t, 'POST', '/api/v1/maildomains/gone.test/keys', {
      selector: 'g1',
      algorithm: 'ed25519',
    });
    const keyFiles = () =>
      readdirSync(join(t.dataDir, 'keys')).filter((f) => f.includes('gone.test'));
    assert.equal(keyFiles().length, 1);
    const r = await api(t, 'DELETE', '/api/v1/maildomains/gone.test');
    assert.equal(r.status, 204);
    assert.deepEqual(keyFiles(), []);
    assert.equal((await api(t, 'GET', '/api/v1/maildomains/gone.test')).status, 404);
  });
});

describe('maildomain DNS status and the bulk-sender report', () => {
  let world: TestWorld;
  let t: TestEngine;
  const BRAND = 'brand.test';
  let dkimRecord: { name: string; value: string };

  before(async () => {
    world = await TestWorld.start();
    await world.addProvider(['dest.test']);
    t = await startEngine(world, {
      policy: {
        queues: { default: { retry: ['1s'], jitter: 0, maxAge: '30s' } },
        sources: { out: { address: '127.0.0.1', helo: 'out.brand.test' } },
      },
    });
    await api(t, 'PUT', `/api/v1/maildomains/${BRAND}`, { returnPathDomain: `bounces.${BRAND}` });
    const key = await api(t, 'POST', `/api/v1/maildomains/${BRAND}/keys`, { selector: 'k1' });
    dkimRecord = key.body.dns;
    world.dns.set(dkimRecord.name, { txt: [dkimRecord.value] });
    await api(t, 'POST', `/api/v1/maildomains/${BRAND}/keys/k1/check`);
    world.dns.set(`bounces.${BRAND}`, {
      txt: ['v=spf1 ip4:127.0.0.1 -all'],
      mx: [{ exchange: 'engine.test', priority: 10 }],
    });
    world.dns.set(`_dmarc.${BRAND}`, { txt: ['v=DMARC1; p=none; rua=mailto:d@brand.test'] });
    world.dns.set('1.0.0.127.in-addr.arpa', { ptr: ['out.brand.test'] });
    world.dns.set('out.brand.test', { a: ['127.0.0.1'] });
  });
  after(async () => {
    await t.stop();
    await world.stop();
  });

  it('says ok for every record that is published as needed', async () => {
    const r = await api(t, 'GET', `/api/v1/maildomains/${BRAND}/dns`);
    assert.equal(r.status, 200);
    const kinds = r.body.records.map(
      (x: { kind: string; status: string }) => `${x.kind}:${x.status}`,
    );
    assert.deepEqual(kinds.sort(), ['dkim:ok', 'dmarc:ok', 'ptr:ok', 'return-path:ok', 'spf:ok']);
    assert.equal(r.body.status, 'ok');
    const shown = await api(t, 'GET', `/api/v1/maildomains/${BRAND}`);
    assert.equal(shown.body.dns.status, 'ok');
  });

  it('reports a missing DMARC and a wrong SPF with the fix, and the report fails them', async () => {
    world.dns.remove(`_dmarc.${BRAND}`);
    world.dns.merge(`bounces.${BRAND}`, { txt: ['v=spf1 ip4:192.0.2.1 -all'] });
    const r = await api(t, 'GET', `/api/v1/maildomains/${BRAND}/dns`);
    const by = (k: string) => r.body.records.find((x: { kind: string }) => x.kind === k);
    assert.equal(by('dmarc').status, 'missing');
    assert.match(by('dmarc').fix, /_dmarc/);
    assert.equal(by('spf').status, 'wrong');
    assert.match(by('spf').fix, /ip4:127\.0\.0\.1/);
    const report = await api(t, 'GET', `/api/v1/maildomains/${BRAND}/compliance`);
    assert.equal(report.status, 200);
    assert.equal(report.body.compliant, false);
    const status = Object.fromEntries(
      report.body.items.map((i: { id: string; status: string }) => [i.id, i.status]),
    );
    assert.deepEqual(status, {
      spf: 'fail',
      dkim: 'pass',
      dmarc: 'fail',
      alignment: 'pass',
      ptr: 'pass',
      tls: 'pass',
      unsubscribe: 'pass',
      complaints: 'unknown',
    });
    // The return path aligns too, but its SPF fails: DMARC passes by DKIM alone.
    const alignment = report.body.items.find((i: { id: string }) => i.id === 'alignment');
    assert.equal(alignment.detail, `aligned by DKIM d=${BRAND}`);
  });

  it('fails alignment when no aligned mechanism passes', async () => {
    world.dns.remove(dkimRecord.name);
    try {
      await api(t, 'GET', `/api/v1/maildomains/${BRAND}/dns`);
      const report = await api(t, 'GET', `/api/v1/maildomains/${BRAND}/compliance`);
      const alignment = report.body.items.find((i: { id: string }) => i.id === 'alignment');
      assert.equal(alignment.status, 'fail', JSON.stringify(alignment));
      assert.equal(
        alignment.detail,
        `DKIM d=${BRAND} and SPF on bounces.${BRAND} align but neither passes, so DMARC fails`,
      );
      assert.match(alignment.fix, /Fix the DKIM or SPF item/);
    } finally {
      world.dns.set(dkimRecord.name, { txt: [dkimRecord.value] });
      await api(t, 'GET', `/api/v1/maildomains/${BRAND}/dns`);
    }
  });

  it('counts complaints against deliveries for the complaint rate', async () => {
    world.dns.set(`_dmarc.${BRAND}`, { txt: ['v=DMARC1; p=none'] });
    world.dns.merge(`bounces.${BRAND}`, { txt: ['v=spf1 ip4:127.0.0.1 -all'] });
    await injectSmtp(
      t.smtpPort,
      `a@${BRAND}`,
      ['c1@dest.test'],
      simpleMessage(`a@${BRAND}`, 'c1@dest.test'),
    );
    await waitForRecord(t, 'c1@dest.test', 'Delivery');
    const report = await api(t, 'GET', `/api/v1/maildomains/${BRAND}/compliance`);
    const complaint = report.body.items.find((i: { id: string }) => i.id === 'complaints');
    assert.equal(complaint.status, 'pass');
    assert.match(complaint.detail, /0 complaints for 1 deliveries/);
    assert.equal(report.body.compliant, true, JSON.stringify(report.body.items));
  });
});
