// The suppression list: a hard bounce suppresses its address, the next message to it is
// refused at intake (SMTP and HTTP) and a recipient suppressed while queued ends before its
// next attempt, each with a Suppressed record; manual entries, CSV import and export.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rejectAll } from '../src/testworld/behaviours.js';
import { TestWorld } from '../src/testworld/index.js';
import {
  api,
  injectSmtp,
  recordsOf,
  simpleMessage,
  startEngine,
  waitFor,
  waitForRecord,
  type TestEngine,
} from './support/harness.js';

const FROM = 'a@sender.test';

describe('the suppression list', () => {
  let world: TestWorld;
  let t: TestEngine;

  before(async () => {
    world = await TestWorld.start();
    await world.addProvider(['gone.test'], { script: rejectAll('550 5.1.1 User unknown') });
    await world.addProvider(['later.test'], { script: rejectAll('451 4.3.0 Try later') });
    await world.addProvider(['fine.test']);
    t = await startEngine(world);
  });
  after(async () => {
    await t?.stop();
    await world?.stop();
  });

  it('suppresses a hard bounce and refuses the next message to it at intake', async () => {
    const to = 'ann@gone.test';
    await injectSmtp(t.smtpPort, FROM, [to], simpleMessage(FROM, to));
    const bounce = await waitForRecord(t, to, 'Bounce');
    const entry = await waitFor('the suppression', async () => {
      const res = await api(t, 'GET', `/api/v1/suppressions/${to}`);
      return res.status === 200 ? res.body : null;
    });
    assert.equal(entry.reason, 'hard-bounce');
    assert.equal(entry.source, bounce.recipientId);

    const smtp = await injectSmtp(t.smtpPort, FROM, [to], simpleMessage(FROM, to));
    assert.equal(smtp.rcptReplies[0]?.code, 550);
    assert.match(smtp.rcptReplies[0]!.text, /suppression list \(hard-bounce\)/);
    const http = await api(t, 'POST', '/api/v1/messages', {
      envelope: { from: FROM, to: ['ANN@gone.test'] },
      raw: simpleMessage(FROM, to),
    });
    assert.equal(http.status, 422);
    assert.equal(http.body.error.code, 'E_SUPPRESSED');
    const suppressed = recordsOf(t, to).filter((r) => r.type === 'Suppressed');
    assert.equal(suppressed.length, 2);
    assert.ok(suppressed.every((r) => r.type === 'Suppressed' && r.stage === 'intake'));
  });

  it('drops only the suppressed recipients of a message that has others', async () => {
    const res = await api(t, 'POST', '/api/v1/messages', {
      envelope: { from: FROM, to: ['ann@gone.test', 'bob@fine.test'] },
      raw: simpleMessage(FROM, 'bob@fine.test'),
    });
    assert.equal(res.status, 202);
    const rcpts = res.body.messages[0].recipients.map((r: { address: string }) => r.address);
    assert.deepEqual(rcpts, ['bob@fine.test']);
    await waitForRecord(t, 'bob@fine.test', 'Delivery');
  });

  it('ends a queued recipient suppressed meanwhile, before its next attempt', async () => {
    const to = 'cid@later.test';
    await injectSmtp(t.smtpPort, FROM, [to], simpleMessage(FROM, to));
    await waitForRecord(t, to, 'TransientFailure');
    const put = await api(t, 'PUT', `/api/v1/suppressions/${to}`, { reason: 'unsubscribe' });
    assert.equal(put.status, 200);
    const s = await waitForRecord(t, to, 'Suppressed');
    assert.equal(s.stage, 'attempt');
    assert.equal(s.suppression.reason, 'unsubscribe');
    const attempts = recordsOf(t, to).filter((r) => r.type === 'TransientFailure').length;
    await new Promise((r) => setTimeout(r, 1500));
    const later = recordsOf(t, to).filter((r) => r.type === 'TransientFailure').length;
    assert.equal(later, attempts, 'no attempt after the suppression');
  });

  it('imports CSV with bad lines reported, exports it, and removes an address', async () => {
    const csv =
      'address,reason\r\nx1@list.test,complaint\r\n"x2@list.test",manual\r\nnot-an-address\r\nx3@list.test,sometimes\r\nx4@list.test\r\n';
    const res = await fetch(`${t.http}/api/v1/suppressions/import`, {
      method: 'POST',
      headers: { authorization: 'Bearer test-key-0123456789abcdef', 'content-type': 'text/csv' },
      body: csv,
    });
    const body = (await res.json()) as { added: number; errors: { line: number }[] };
    assert.equal(res.status, 200);
    assert.equal(body.added, 3);
    assert.deepEqual(
      body.errors.map((e) => e.line),
      [4, 5],
    );
    const exported = await fetch(`${t.http}/api/v1/suppressions/export`, {
      headers: { authorization: 'Bearer test-key-0123456789abcdef' },
    });
    assert.match(exported.headers.get('content-type') ?? '', /text\/csv/);
    const text = await exported.text();
    assert.match(text, /^address,reason,source,at\r\n/);
    assert.match(text, /\r\nx1@list\.test,complaint,import,/);
    const del = await api(t, 'DELETE', '/api/v1/suppressions/x1@list.test');
    assert.equal(del.status, 204);
    const gone = await api(t, 'GET', '/api/v1/suppressions/x1@list.test');
    assert.equal(gone.status, 404);
    const bad = await api(t, 'PUT', '/api/v1/suppressions/nope', {});
    assert.equal(bad.body.error.code, 'E_BAD_ADDRESS');
  });
});
