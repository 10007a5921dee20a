// One-click unsubscribe (RFC 8058): the engine adds signed List-Unsubscribe links for the
// queues and messages that ask for them; a POST of "List-Unsubscribe=One-Click" suppresses
// the address; a GET does not; a forged token is refused.
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestWorld, type Receiver } from '../src/testworld/index.js';
import { api, simpleMessage, startEngine, waitFor, type TestEngine } from './support/harness.js';

const FROM = 'news@sender.test';

describe('one-click unsubscribe', () => {
  let world: TestWorld;
  let rx: Receiver;
  let t: TestEngine;

  before(async () => {
    world = await TestWorld.start();
    rx = await world.addProvider(['list.test']);
    t = await startEngine(world, {
      feedback: { unsubscribeUrl: 'http://127.0.0.1:1/' },
      policy: { queues: { bulk: { listUnsubscribe: true, retry: ['1s'], maxAge: '1m' } } },
    });
  });
  after(async () => {
    await t?.stop();
    await world?.stop();
  });

  const send = (to: string[], extra: object = {}) =>
    api(t, 'POST', '/api/v1/messages', {
      envelope: { from: FROM, to },
      raw: simpleMessage(FROM, to[0]!),
      ...extra,
    });

  /** The unsubscribe link the receiver got in the message to `to`. */
  async function linkOf(to: string): Promise<string | null> {
    await rx.waitForMessages(rx.messages.length, 5_000);
    const m = await waitFor(`the message to ${to}`, () =>
      rx.messages.find((x) => x.to.includes(to)),
    );
    const text = m.data.toString();
    const link = /^List-Unsubscribe: <http:\/\/127\.0\.0\.1:1\/unsubscribe\/([^>]+)>\r$/m.exec(
      text,
    );
    if (link) assert.match(text, /^List-Unsubscribe-Post: List-Unsubscribe=One-Click\r$/m);
    return link ? `${t.http}/unsubscribe/${link[1]}` : null;
  }

  it('adds a signed link for a bulk message with one recipient, and only then', async () => {
    assert.equal((await send(['ann@list.test'], { queue: 'bulk' })).status, 202);
    assert.ok(await linkOf('ann@list.test'));
    await send(['bob@list.test']);
    assert.equal(await linkOf('bob@list.test'), null, 'the default queue does not ask for one');
    await send(['cat@list.test', 'dan@list.test'], { queue: 'bulk' });
    assert.equal(await linkOf('cat@list.test'), null, 'a link names one recipient');
    const key = statSync(join(t.dataDir, 'unsubscribe-key'));
    assert.equal(key.mode & 0o777, 0o600);
  });

  it('suppresses on the one-click POST, not on a GET, and refuses a forged token', async () => {
    await send(['eve@list.test'], { listUnsubscribe: true });
    const url = (await linkOf('eve@list.test'))!;
    const page = await fetch(url);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /Stop sending mail to eve@list\.test\?/);
    assert.equal((await api(t, 'GET', '/api/v1/suppressions/eve@list.test')).status, 404);

    const forged = url.slice(0, -2) + (url.endsWith('AA') ? 'BB' : 'AA');
    const post = (u: string) =>
      fetch(u, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'List-Unsubscribe=One-Click',
      });
    assert.equal((await post(forged)).status, 404);
    const ok = await post(url);
    assert.equal(ok.status, 200);
    const entry = await api(t, 'GET', '/api/v1/suppressions/eve@list.test');
    assert.equal(entry.body.reason, 'unsubscribe');
    assert.match(entry.body.source, /^unsubscribe:/);
    const again = await send(['eve@list.test']);
    assert.equal(again.status, 422);
    assert.equal(again.body.error.code, 'E_SUPPRESSED');
  });
});
