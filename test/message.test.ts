/** Intake's message preparation: refusals, line-end normalisation, added header fields. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isRefusal, prepareMessage, type TraceInfo } from '../src/intake/message.js';

const trace: TraceInfo = {
  hostname: 'engine.test',
  messageId: 'ABC123',
  helo: 'client.test',
  clientIp: '127.0.0.1',
  protocol: 'ESMTP',
  recipient: 'bob@example.test',
  now: new Date('2026-12-03T10:00:00Z'),
};

function prepared(raw: string): string {
  const out = prepareMessage(Buffer.from(raw, 'latin1'), trace);
  assert.ok(!isRefusal(out), `refused: ${JSON.stringify(out)}`);
  return out.toString('latin1');
}

describe('prepareMessage', () => {
  const lineEnds: [string, string][] = [
    ['a\n.\nb', 'a\r\n.\r\nb'],
    ['a\r\n.\nb', 'a\r\n.\r\nb'],
    ['a\n.\r\nb', 'a\r\n.\r\nb'],
    ['a\r.\r\nb', 'a\r\n.\r\nb'],
    ['a\rb\n\nc', 'a\r\nb\r\n\r\nc'],
  ];
  for (const [body, want] of lineEnds) {
    it(`rewrites ${JSON.stringify(body)} with CRLF line ends only`, () => {
      const out = prepared(`Subject: x\r\n\r\n${body}\r\n`);
      assert.ok(out.endsWith(`\r\n\r\n${want}\r\n`), JSON.stringify(out));
      assert.equal(/(?<!\r)\n|\r(?!\n)/.test(out), false);
    });
  }

  const refusals: [string, string, string][] = [
    ['NUL bytes', 'Subject: x\r\n\r\na\0b\r\n', 'nul-bytes'],
    ['no header section', 'just text\r\n', 'no-header'],
  ];
  for (const [name, raw, reason] of refusals) {
    it(`refuses ${name} with 554 5.6.0 (${reason})`, () => {
      const out = prepareMessage(Buffer.from(raw), trace);
      assert.ok(isRefusal(out));
      assert.deepEqual([out.reason, out.code, out.enhanced], [reason, 554, '5.6.0']);
    });
  }

  it('puts Received first and adds Message-ID and Date only when missing', () => {
    const bare = prepared('Subject: x\r\n\r\nbody\r\n');
    assert.match(bare, /^Received: from client\.test \(\[127\.0\.0\.1\]\)\r\n\tby engine\.test/);
    assert.match(bare, /\r\nMessage-ID: <ABC123@engine\.test>\r\n/);
    assert.match(bare, /\r\nDate: Thu, 03 Dec 2026 10:00:00 GMT\r\n/);
    const api = prepareMessage(Buffer.from('Subject: x\r\n\r\nb'), {
      ...trace,
      helo: undefined,
      clientIp: undefined,
    });
    assert.match(api.toString(), /^Received: from \[unknown\]\r\n/);
    const full = prepared('Message-ID: <own@x>\r\nDate: Mon, 1 Dec 2026 00:00:00 +0000\r\n\r\nb');
    assert.equal(full.match(/^Message-ID:/gim)?.length, 1);
    assert.equal(full.match(/^Date:/gim)?.length, 1);
    assert.ok(full.endsWith('\r\n\r\nb\r\n'), 'a final CRLF is added');
  });
});
