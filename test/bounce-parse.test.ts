/**
 * The inbound-report parser over real reports: the flufl.bounce samples against the facts of
 * flufl's own expectations (test/data/bounces/flufl/expected.tsv) and the sisimai samples
 * against ours (test/data/bounces/sisimai/expected.tsv); then the details a listener relies
 * on, bad input that must never throw, and `gridpost bounce parse` as a child process.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { Classifier } from '../src/bounces/classifier.js';
import { analyseMessage } from '../src/bounces/inbound/analyse.js';
import type { InboundAnalysis } from '../src/bounces/inbound/types.js';
import { CLI } from './support/child-engine.js';

const run = promisify(execFile);
const FLUFL = 'test/data/bounces/flufl';
const SISIMAI = 'test/data/bounces/sisimai';

/** The rows of a tab-separated expectations file, comments and blank lines left out. */
function rows(file: string): string[][] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith('#'))
    .map((l) => l.split('\t'));
}

function list(cell: string | undefined): string[] {
  return !cell || cell === '-' ? [] : cell.split(' ');
}

/** The addresses the sender used, lower-cased and sorted: originalRecipient, else address. */
function addresses(a: InboundAnalysis): string[] {
  const all = a.recipients.map((r) => (r.originalRecipient ?? r.address).toLowerCase());
  return [...new Set(all)].sort();
}

async function analyseFile(file: string): Promise<InboundAnalysis> {
  return analyseMessage(readFileSync(file));
}

describe('flufl.bounce samples (test/data/bounces/flufl/expected.tsv)', () => {
  const table = rows(join(FLUFL, 'expected.tsv'));

  it('lists every sample file of the corpus once', () => {
    const files = readdirSync(FLUFL).filter((f) => f.endsWith('.txt'));
    assert.ok(files.length >= 100, `${files.length} files`);
    assert.deepEqual(table.map((r) => r[0]).sort(), files.sort());
  });

  for (const [file, kind, want, note] of table) {
    it(`${file}: ${kind} ${want}`, async () => {
      const got = await analyseFile(join(FLUFL, file!));
      const expected = list(want)
        .map((a) => a.toLowerCase())
        .sort();
      assert.deepEqual(addresses(got), expected, `${note}; format ${got.format}`);
      assert.equal(got.kind, kind, note);
    });
  }
});

describe('sisimai samples (test/data/bounces/sisimai/expected.tsv)', () => {
  const table = rows(join(SISIMAI, 'expected.tsv'));

  it('covers several formats and kinds', () => {
    assert.ok(table.length >= 17, `${table.length} samples`);
    const kinds = new Set(table.map((r) => r[1]));
    for (const k of ['bounce', 'complaint', 'auto-reply']) assert.ok(kinds.has(k), k);
  });

  for (const [file, kind, format, want, statuses, note] of table) {
    it(`${file}: ${kind} ${format} ${want}`, async () => {
      const got = await analyseFile(join(SISIMAI, file!));
      assert.equal(got.kind, kind, note);
      assert.equal(got.format, format, note);
      if (kind === 'complaint') {
        assert.deepEqual(got.complaint?.originalRcptTo, list(want));
        assert.equal(got.complaint?.feedbackType, statuses);
        return;
      }
      assert.deepEqual(
        got.recipients.map((r) => r.address.toLowerCase()),
        list(want).map((a) => a.toLowerCase()),
      );
      const wantStatus = list(statuses).map((s) => (s === '-' ? undefined : s));
      const gotStatus = got.recipients.map((r) => r.status);
      if (wantStatus.length > 0) assert.deepEqual(gotStatus, wantStatus);
    });
  }
});

/** A multipart/report DSN with the given delivery-status part and headers. */
function dsn(status: string, headers = '', type = 'message/delivery-status'): string {
  return [
    'From: Mail Delivery System <MAILER-DAEMON@mx.example.net>',
    'To: bounces@sender.example',
    'Subject: Undelivered Mail Returned to Sender',
    headers,
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=delivery-status; boundary="B"',
    '',
    '--B',
    'Content-Type: text/plain',
    '',
    'Your message could not be delivered.',
    '',
    '--B',
    `Content-Type: ${type}`,
    '',
    status,
    '',
    '--B',
    'Content-Type: text/rfc822-headers',
    '',
    'Return-Path: <bounces+42@sender.example>',
    'Message-ID: <m42@sender.example>',
    'Subject: hello',
    '',
    '--B--',
    '',
  ]
    .filter((l, i) => l !== '' || i > 3)
    .join('\r\n');
}

describe('delivery status notifications (RFC 3464)', () => {
  it('unfolds folded fields and strips the types', async () => {
    const a = await analyseMessage(
      dsn(
        [
          'Reporting-MTA: dns;',
          '  mx.example.net',
          '',
          'Final-Recipient: rfc822;',
          ' ann@example.org',
          'Action: failed',
          'Status: 5.1.1',
          'Remote-MTA: dns; mx.example.org',
          'Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach',
          '    does not exist',
        ].join('\r\n'),
      ),
    );
    assert.equal(a.kind, 'bounce');
    assert.equal(a.reportingMta, 'mx.example.net');
    const [r] = a.recipients;
    assert.equal(r?.address, 'ann@example.org');
    assert.equal(r?.remoteMta, 'mx.example.org');
    assert.match(r?.diagnostic ?? '', /^550-5\.1\.1 The email account .* does not exist$/);
    assert.deepEqual([r?.bounce.category, r?.bounce.class], ['bad-mailbox', 'hard']);
    assert.equal(a.original?.messageId, '<m42@sender.example>');
    assert.equal(a.original?.returnPath, 'bounces+42@sender.example');
  });

  it('lists every recipient of mixed actions, and any failure makes a bounce', async () => {
    const status = [
      'Reporting-MTA: dns; mx.example.net',
      '',
      'Final-Recipient: rfc822; a@example.org',
      'Action: delayed',
      'Status: 4.4.1',
      '',
      'Final-Recipient: rfc822; b@example.org',
      'Action: failed',
      'Status: 5.2.2',
      'Diagnostic-Code: smtp; 552 mailbox full',
      '',
      'Final-Recipient: rfc822; c@example.org',
      'Action: delivered (relayed to non-DSN-aware mailer)',
      'Status: 2.0.0',
    ].join('\r\n');
    const a = await analyseMessage(dsn(status));
    assert.equal(a.kind, 'bounce');
    const seen = a.recipients.map((r) => [r.address, r.action, r.status]);
    assert.deepEqual(seen, [
      ['a@example.org', 'delayed', '4.4.1'],
      ['b@example.org', 'failed', '5.2.2'],
      ['c@example.org', 'delivered', '2.0.0'],
    ]);
    assert.equal(a.recipients[0]?.bounce.class, 'soft');
    assert.equal(a.recipients[1]?.bounce.category, 'quota-issues');
  });

  it('calls a report whose recipients are all delayed a delay', async () => {
    const status = 'Final-Recipient: rfc822; a@example.org\r\nAction: delayed\r\nStatus: 4.4.7';
    const a = await analyseMessage(dsn(status));
    assert.equal(a.kind, 'delay');
    assert.equal(a.recipients[0]?.bounce.class, 'soft');
  });

  it('takes the class from the status when the diagnostic has no reply code', async () => {
    const status = 'Final-Recipient: rfc822; a@example.org\r\nAction: failed\r\nStatus: 5.1.2';
    const a = await analyseMessage(dsn(status));
    assert.equal(a.recipients[0]?.bounce.category, 'bad-domain');
    const none = await analyseMessage(dsn('Final-Recipient: rfc822; a@example.org'));
    assert.equal(none.kind, 'bounce', 'no Action and no Status: failed');
  });

  it('reads message/global-delivery-status (RFC 6533) with a utf-8 address', async () => {
    const status = [
      'Reporting-MTA: dns; mx.example.net',
      '',
      'Final-Recipient: utf-8; j\\x{00FC}rgen@b\\x{00FC}ro.example',
      'Original-Recipient: rfc822; juergen@buero.example',
      'Action: failed',
      'Status: 5.1.1',
    ].join('\r\n');
    const a = await analyseMessage(dsn(status, '', 'message/global-delivery-status'));
    assert.equal(a.format, 'rfc3464');
    assert.equal(a.recipients[0]?.address, 'jürgen@büro.example');
    assert.equal(a.recipients[0]?.originalRecipient, 'juergen@buero.example');
  });

  it('is still a bounce when the DSN says Auto-Submitted: auto-replied', async () => {
    const status = 'Final-Recipient: rfc822; a@example.org\r\nAction: failed\r\nStatus: 5.1.1';
    const a = await analyseMessage(dsn(status, 'Auto-Submitted: auto-replied'));
    assert.equal(a.kind, 'bounce');
    assert.equal(a.autoReply, undefined);
  });
});

describe('complaints (RFC 5965)', () => {
  it('reads an ARF report with two Original-Rcpt-To', async () => {
    const a = await analyseFile(join(SISIMAI, 'arf-05.eml'));
    assert.equal(a.kind, 'complaint');
    assert.deepEqual(a.complaint, {
      feedbackType: 'abuse',
      originalRcptTo: ['fake.rcpt@example.com', 'fake.rcpt2@example.net'],
      userAgent: 'abusix-py/0.1',
      version: '1',
      originalMailFrom: 'test',
      arrivalDate: 'Thu, 01 Jan 2015 15:06:25 +0000',
      sourceIp: '192.0.2.45',
    });
    assert.equal(a.original?.messageId, '<8A025E63-47F5-CDA0-78D2-C0E5A944FB10@example.net>');
    assert.deepEqual(a.recipients, []);
  });
});

describe('auto-replies (RFC 3834)', () => {
  const reply = (headers: string, subject: string) =>
    `From: Ann <ann@example.org>\r\nTo: news@sender.example\r\nSubject: ${subject}\r\n` +
    `${headers}\r\n\r\nI am away until Monday; your message to ann@example.org ` +
    'will be read then.\r\n';

  it('is an auto-reply, never a bounce', async () => {
    const a = await analyseMessage(reply('Auto-Submitted: auto-replied', 'Re: your order'));
    assert.equal(a.kind, 'auto-reply');
    assert.equal(a.autoReply, 'Auto-Submitted: auto-replied');
    assert.deepEqual(a.recipients, []);
    const b = await analyseMessage(reply('X-Mailer: Outlook', 'Automatic reply: your order'));
    assert.equal(b.kind, 'auto-reply');
    const c = await analyseMessage(reply('X-Mailer: Outlook', 'Abwesenheitsnotiz: Angebot'));
    assert.equal(c.kind, 'auto-reply');
  });

  it('does not take X-Auto-Response-Suppress alone for one', async () => {
    const a = await analyseMessage(reply('X-Auto-Response-Suppress: All', 'Re: your order'));
    assert.equal(a.kind, 'not-bounce');
  });
});

describe('bad input', () => {
  it('never throws, and invents nothing', async () => {
    const inputs: Array<Buffer | string> = [
      '',
      Buffer.alloc(0),
      randomBytes(64 * 1024),
      '\r\n\r\n\r\n',
      'From: x\r\nContent-Type: multipart/report; boundary=\r\n\r\n--\r\n--\r\n',
      `Subject: ${'x'.repeat(3 * 1024 * 1024)}\r\n\r\nbody`,
      `X-Long: ${'a@'.repeat(200_000)}\r\n\r\n${'<'.repeat(100_000)}@`,
      dsn('Final-Recipient: rfc822;\r\nAction: failed'),
    ];
    for (const raw of inputs) {
      const a = await analyseMessage(raw);
      assert.deepEqual(a.recipients, [], String(raw).slice(0, 40));
    }
  });

  it('analyses only the first 10 MiB of a larger message, in reasonable time', async () => {
    const status = 'Final-Recipient: rfc822; a@example.org\r\nAction: failed\r\nStatus: 5.1.1';
    const big = `${dsn(status)}\r\n${'filler line of a returned message\r\n'.repeat(400_000)}`;
    const started = performance.now();
    const a = await analyseMessage(big);
    assert.equal(a.kind, 'bounce');
    assert.ok(performance.now() - started < 5000, 'under 5 s');
  });

  it('uses the classifier it is given', async () => {
    const own = new Classifier([{ name: 'own', enhanced: '5.1.1', category: 'other' }]);
    const status = 'Final-Recipient: rfc822; a@example.org\r\nAction: failed\r\nStatus: 5.1.1';
    const a = await analyseMessage(dsn(status), own);
    assert.equal(a.recipients[0]?.bounce.rule, 'installation:own');
  });
});

describe('gridpost bounce parse', () => {
  it('prints the analysis of a file as JSON', async () => {
    const { stdout } = await run(process.execPath, [
      CLI,
      'bounce',
      'parse',
      join(SISIMAI, 'email-exim-02.eml'),
    ]);
    const doc = JSON.parse(stdout) as InboundAnalysis;
    assert.equal(doc.kind, 'bounce');
    assert.deepEqual(
      doc.recipients.map((r) => r.address),
      ['kijitora@example.jp', 'sabatora@example.jp'],
    );
  });

  it('reads standard input for -', async () => {
    const child = spawn(process.execPath, [CLI, 'bounce', 'parse', '-']);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stdin.end(readFileSync(join(FLUFL, 'qmail_01.txt')));
    const code = await new Promise((resolve) => child.on('close', resolve));
    assert.equal(code, 0);
    const doc = JSON.parse(out) as InboundAnalysis;
    assert.deepEqual(
      [doc.kind, doc.format, doc.recipients[0]?.address],
      ['bounce', 'qmail', 'userx@example.de'],
    );
  });

  it("classifies with a policy file's bounceRules first, as the engine does", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gridpost-parse-'));
    try {
      const policy = join(dir, 'policy.yaml');
      const rule = { text: 'mx\\.example\\.jp', category: 'routing-errors' };
      writeFileSync(policy, `bounceRules:\n  own-mx: ${JSON.stringify(rule)}\n`);
      const file = join(SISIMAI, 'email-exim-02.eml');
      const shipped = JSON.parse(
        (await run(process.execPath, [CLI, 'bounce', 'parse', file])).stdout,
      );
      const args = [CLI, 'bounce', 'parse', '--policy', policy, file];
      const own = JSON.parse((await run(process.execPath, args)).stdout) as InboundAnalysis;
      assert.notEqual(shipped.recipients[0].bounce.rule, 'installation:own-mx');
      assert.deepEqual(
        [own.recipients[0]?.bounce.rule, own.recipients[0]?.bounce.category],
        ['installation:own-mx', 'routing-errors'],
      );
      writeFileSync(policy, 'bounceRules:\n  bad: { category: nonsense }\n');
      const err = await run(process.execPath, args).catch((e: { stderr: string }) => e);
      assert.match(err.stderr, /E_POLICY_INVALID/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('says which file it cannot read, with exit code 2', async () => {
    const err = await run(process.execPath, [CLI, 'bounce', 'parse', 'no/such/file.eml']).catch(
      (e: { code: number; stderr: string }) => e,
    );
    assert.ok('code' in err && err.code === 2, 'exit code 2');
    assert.match(err.stderr, /E_INPUT_FILE: cannot read no\/such\/file\.eml/);
  });
});
