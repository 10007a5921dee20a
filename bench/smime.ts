/**
 * S/MIME signatures per second (`npm run bench:smime`), on one thread and as the engine signs
 * (signForPlan: on its signing worker, 16 messages in flight, the event loop's delay sampled
 * meanwhile): a 5 KB
 * multipart/alternative message with 8-bit text and HTML, signed with an RSA-2048
 * certificate and its chain from a throw-away openssl CA; then the same for 100 KB and
 * 1 MB messages (a base64 attachment), where the 7-bit pass over the content (checking each
 * line, splitting the parts, copying), not RSA, sets the pace.
 *
 *   node dist/bench/smime.js [--seconds 5]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { signForPlan } from '../src/signing/signing.js';
import { readCredential, type SmimeCredential } from '../src/signing/smime-credential.js';
import { smimeSign } from '../src/signing/smime-sign.js';
import { makeTestCa } from '../test/support/test-ca.js';
import { runConcurrent } from './support/concurrent.js';

const HEADER = [
  'From: Alice Example <alice@example.org>',
  'To: bob@example.net',
  'Subject: Your order',
  'Date: Fri, 04 Dec 2026 10:00:00 +0000',
  'Message-ID: <bench@example.org>',
  'MIME-Version: 1.0',
  'Content-Type: multipart/alternative; boundary="b1"',
  '',
];

/** A multipart/alternative of about `bytes` octets: 8-bit text and HTML, plus padding. */
function message(bytes: number): Buffer {
  const line = 'Grüße aus Köln: Ihre Bestellung Nr. 4711 ist unterwegs, Lieferung übermorgen.';
  const lines = Math.max(1, Math.round((bytes - 400) / 2 / (Buffer.byteLength(line) + 6)));
  const text = Array.from({ length: lines }, () => line).join('\r\n');
  const html = Array.from({ length: lines }, () => `<p>${line}</p>`).join('\r\n');
  const parts = [
    ...['--b1', 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit'],
    ...['', text, '--b1', 'Content-Type: text/html; charset=utf-8'],
    ...['Content-Transfer-Encoding: 8bit', '', html, '--b1--', ''],
  ];
  return Buffer.from([...HEADER, ...parts].join('\r\n'));
}

/** A text part and a base64 attachment, about `bytes` octets in all. */
function withAttachment(bytes: number): Buffer {
  const data = Buffer.alloc(Math.floor((bytes * 3) / 4), 'attachment ');
  const base64 = data
    .toString('base64')
    .match(/.{1,76}/g)!
    .join('\r\n');
  const parts = [
    ...['--b1', 'Content-Type: text/plain; charset=utf-8', '', 'Anbei.', '--b1'],
    ...['Content-Type: application/pdf', 'Content-Transfer-Encoding: base64', ''],
    ...[base64, '--b1--', ''],
  ];
  const header = HEADER.map((l) => l.replace('alternative', 'mixed'));
  return Buffer.from([...header, ...parts].join('\r\n'));
}

/** Signatures per second of `msg` over `ms` milliseconds. */
function rate(msg: Buffer, cred: SmimeCredential, ms: number): number {
  let n = 0;
  const started = performance.now();
  while (performance.now() - started < ms) {
    smimeSign(msg, cred);
    n++;
  }
  return Math.round(n / ((performance.now() - started) / 1000));
}

// Messages in flight for the worker: enough to keep it busy.
const IN_FLIGHT = 16;

/** Signatures per second as the engine makes them, and the event loop's p99 delay (ms). */
async function rateOffLoop(msg: Buffer, cred: SmimeCredential, ms: number) {
  const plan = { maildomain: 'example.org', dkim: [], account: cred };
  const row = await runConcurrent(() => signForPlan(msg, plan, new Date()), IN_FLIGHT, ms);
  const p99 = row.loopP99Ms === undefined ? null : Math.round(row.loopP99Ms * 100) / 100;
  return { perSecond: Math.round(row.perSecond), loopP99Ms: p99 };
}

/** One signature checked by openssl, so the figure is for signatures that verify. */
function verified(msg: Buffer, cred: SmimeCredential, caFile: string): void {
  const dir = mkdtempSync(join(tmpdir(), 'gridpost-bench-smime-'));
  try {
    writeFileSync(join(dir, 'm.eml'), smimeSign(msg, cred));
    execFileSync('openssl', ['cms', '-verify', '-CAfile', caFile, '-in', join(dir, 'm.eml')], {
      stdio: 'ignore',
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' } } });
  const ms = Number(values.seconds) * 1000;
  const ca = await makeTestCa();
  try {
    const pem = ca.alice.certPem + ca.intermediatePem + ca.alice.keyPem;
    const cred = readCredential({ pem }, 'alice@example.org');
    const sizes = [
      { name: '5 KB', msg: message(5_000) },
      { name: '100 KB', msg: withAttachment(100_000) },
      { name: '1 MB', msg: withAttachment(1_000_000) },
    ];
    const results: Record<string, object> = {};
    for (const { name, msg } of sizes) {
      verified(msg, cred, ca.caFile);
      const span = name === '5 KB' ? ms : ms / 2;
      const perSecond = rate(msg, cred, span);
      const engine = await rateOffLoop(msg, cred, span);
      results[name] = { bytes: msg.length, perSecond, engine };
      console.log(
        `${name} (${msg.length} octets), RSA-2048: ${perSecond} signatures per second on one ` +
          `thread; as the engine signs ${engine.perSecond}, event loop p99 delay ` +
          `${engine.loopP99Ms} ms`,
      );
    }
    console.log(JSON.stringify({ key: 'rsa-2048', results }));
  } finally {
    ca.remove();
  }
}

await main();
