/**
 * The policy over HTTP: the document as JSON and YAML, a replacement (and a dry run), one entry
 * at a time, refusals that name every bad key path, and a shaping change that a running ready
 * queue applies at once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { TestWorld } from '../src/testworld/index.js';
import {
  TEST_KEY,
  api,
  startEngine,
  waitFor,
  waitForRecord,
  type TestEngine,
} from './support/harness.js';

const POLICY_YAML = `# edited by hand
queues:
  default:
    retry: [1s]
    jitter: 0
    maxAge: 30s
  bulk:
    weight: 5
    retry: [30s, 5m]
    maxAge: 2d
shaping:
  test:
    idleTimeout: 0.3
    maxConnections: 20
    maxMessagesPerConnection: 1000
  slow-net:
    domain: slow.test
    maxConnections: 2
    messageRate: 100/min
responseRules:
  rate-limited:
    code: 4xx
    text: slow down
    action: backoff
    duration: 10m
`;

/** Sends raw text with a content type (the harness's api() sends JSON). */
async function send(t: TestEngine, method: string, path: string, type: string, text: string) {
  const res = await fetch(`${t.http}${path}`, {
    method,
    headers: { authorization: `Bearer ${TEST_KEY}`, 'content-type': type },
    body: text,
  });
  return { status: res.status, body: JSON.parse(await res.text()) };
}

/** GETs text with an Accept header. */
async function getText(t: TestEngine, path: string, accept = '*/*') {
  const res = await fetch(`${t.http}${path}`, {
    headers: { authorization: `Bearer ${TEST_KEY}`, accept },
  });
  return {
    status: res.status,
    type: res.headers.get('content-type') ?? '',
    text: await res.text(),
  };
}

describe('policy API', () => {
  let world: TestWorld;
  let t: TestEngine;

  before(async () => {
    world = await TestWorld.start();
    await world.addProvider(['live.test']);
    t = await startEngine(world);
  });
  after(async () => {
    await t?.stop();
    await world?.stop();
  });

  it('gives the document as JSON, and as YAML by query or Accept header', async () => {
    const json = await api(t, 'GET', '/api/v1/policy');
    assert.equal(json.status, 200);
    assert.deepEqual(json.body.queues.default, { retry: ['1s'], jitter: 0, maxAge: '30s' });
    const byQuery = await getText(t, '/api/v1/policy?format=yaml');
    assert.match(byQuery.type, /^application\/yaml/);
    assert.deepEqual(parse(byQuery.text), json.body);
    const byAccept = await getText(t, '/api/v1/policy', 'application/yaml');
    assert.match(byAccept.type, /^application\/yaml/);
    assert.deepEqual(parse(byAccept.text), json.body);
    const bad = await api(t, 'GET', '/api/v1/policy?format=xml');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'E_VALIDATION');
    assert.equal(bad.body.error.path, 'format');
  });

  it('replaces the document from YAML, and gives back the same semantics', async () => {
    const put = await send(t, 'PUT', '/api/v1/policy', 'application/yaml', POLICY_YAML);
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual(put.body, parse(POLICY_YAML), 'the answer is the document in force');
    const yaml = await getText(t, '/api/v1/policy?format=yaml');
    assert.deepEqual(parse(yaml.text), parse(POLICY_YAML));
    const queues = await api(t, 'GET', '/api/v1/queues');
    const bulk = queues.body.queues.find((q: { name: string }) => q.name === 'bulk');
    assert.equal(bulk.weight, 5, 'the new queue is in force');
  });

  it('takes back its own export unchanged (text/yaml too)', async () => {
    const exported = await getText(t, '/api/v1/policy?format=yaml');
    const put = await send(t, 'PUT', '/api/v1/policy', 'text/yaml', exported.text);
    assert.equal(put.status, 200);
    const again = await getText(t, '/api/v1/policy?format=yaml');
    assert.equal(again.text, exported.text);
    const json = await api(t, 'GET', '/api/v1/policy');
    const back = await api(t, 'PUT', '/api/v1/policy', json.body);
    assert.deepEqual(back.body, json.body);
  });

  it('validates only on a dry run', async () => {
    const before = await api(t, 'GET', '/api/v1/policy');
    const doc = { ...before.body, queues: { ...before.body.queues, extra: { weight: 7 } } };
    const dry = await api(t, 'PUT', '/api/v1/policy?dryRun=true', doc);
    assert.equal(dry.status, 200);
    assert.deepEqual((await api(t, 'GET', '/api/v1/policy')).body, before.body, 'unchanged');
    const bad = await api(t, 'PUT', '/api/v1/policy?dryRun=true', { queues: { x: { weight: 0 } } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'E_POLICY_INVALID');
  });

  it('refuses a bad document naming every bad key path, and keeps the old one', async () => {
    const before = await api(t, 'GET', '/api/v1/policy');
    const bad = await api(t, 'PUT', '/api/v1/policy', {
      queues: { bulk: { weight: 0 } },
      shaping: { x: { maxConnections: 'many' } },
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'E_POLICY_INVALID');
    assert.equal(bad.body.error.path, 'queues.bulk.weight');
    assert.match(bad.body.error.message, /^\s+queues\.bulk\.weight: /m);
    assert.match(bad.body.error.message, /^\s+shaping\.x\.maxConnections: /m);
    assert.ok(bad.body.error.fix);
    const dangling = await api(t, 'PUT', '/api/v1/policy', { queues: { b: { pool: 'nope' } } });
    assert.equal(dangling.body.error.code, 'E_POLICY_INVALID');
    assert.equal(dangling.body.error.path, 'queues.b.pool');
    assert.match(dangling.body.error.message, /no pool "nope"; pools: default/);
    assert.deepEqual((await api(t, 'GET', '/api/v1/policy')).body, before.body, 'unchanged');
  });

  it('refuses YAML that does not parse with E_BAD_YAML', async () => {
    const bad = await send(t, 'PUT', '/api/v1/policy', 'application/yaml', 'queues: {bulk: [\n');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'E_BAD_YAML');
    const scalar = await send(t, 'PUT', '/api/v1/policy', 'application/yaml', '42');
    assert.equal(scalar.status, 400);
    assert.equal(scalar.body.error.code, 'E_VALIDATION');
  });

  it('reads, sets and deletes one entry', async () => {
    const q = await api(t, 'GET', '/api/v1/policy/queues/bulk');
    assert.equal(q.status, 200);
    assert.deepEqual(q.body, { weight: 5, retry: ['30s', '5m'], maxAge: '2d' });
    const yaml = 'domain: other.test\nmaxConnections: 4\n';
    const set = await send(t, 'PUT', '/api/v1/policy/shaping/other', 'application/yaml', yaml);
    assert.equal(set.status, 200);
    assert.deepEqual(set.body, { domain: 'other.test', maxConnections: 4 });
    const got = await getText(t, '/api/v1/policy/shaping/other?format=yaml');
    assert.deepEqual(parse(got.text), { domain: 'other.test', maxConnections: 4 });
    const del = await fetch(`${t.http}/api/v1/policy/shaping/other`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${TEST_KEY}` },
    });
    assert.equal(del.status, 204);
    const gone = await api(t, 'GET', '/api/v1/policy/shaping/other');
    assert.equal(gone.status, 404);
    assert.equal(gone.body.error.code, 'E_NOT_FOUND');
    assert.equal(gone.body.error.path, 'shaping.other');
    const again = await api(t, 'DELETE', '/api/v1/policy/shaping/other');
    assert.equal(again.status, 404);
  });

  it('refuses an unknown section, a bad entry, and a delete that would leave a reference', async () => {
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const body = method === 'PUT' ? { weight: 1 } : undefined;
      const res = await api(t, method, '/api/v1/policy/queue/bulk', body);
      assert.equal(res.status, 400, method);
      assert.equal(res.body.error.code, 'E_VALIDATION');
      assert.equal(res.body.error.path, 'section');
      assert.match(res.body.error.message, /queues, sources, pools, providers, shaping/);
    }
    const bad = await api(t, 'PUT', '/api/v1/policy/shaping/x', { maxConnections: 0 });
    assert.equal(bad.body.error.code, 'E_POLICY_INVALID');
    assert.equal(bad.body.error.path, 'shaping.x.maxConnections');
    const badName = await api(t, 'PUT', '/api/v1/policy/queues/no%20spaces', { weight: 1 });
    assert.equal(badName.body.error.code, 'E_POLICY_INVALID');
    assert.match(badName.body.error.path, /^queues/);
    const pools = { sources: { default: 1 } };
    assert.equal((await api(t, 'PUT', '/api/v1/policy/pools/p1', pools)).status, 200);
    assert.equal((await api(t, 'PUT', '/api/v1/policy/queues/q1', { pool: 'p1' })).status, 200);
    const del = await api(t, 'DELETE', '/api/v1/policy/pools/p1');
    assert.equal(del.status, 400);
    assert.equal(del.body.error.code, 'E_POLICY_INVALID');
    assert.equal(del.body.error.path, 'queues.q1.pool');
    assert.equal((await api(t, 'GET', '/api/v1/policy/pools/p1')).status, 200, 'still there');
  });

  it('applies a shaping change to a ready queue that is running', async () => {
    const rule = { domain: 'live.test', maxConnections: 3, idleTimeout: 30 };
    assert.equal((await api(t, 'PUT', '/api/v1/policy/shaping/live', rule)).status, 200);
    await deliver(t, 'one@live.test');
    const first = await liveQueue(t, (r) => r.limits.maxConnections === 3);
    assert.ok(first.rules.includes('live'), `rules ${first.rules}`);
    const tighter = { ...rule, maxConnections: 2, messageRate: '120/min' };
    assert.equal((await api(t, 'PUT', '/api/v1/policy/shaping/live', tighter)).status, 200);
    await deliver(t, 'two@live.test');
    const second = await liveQueue(t, () => true);
    assert.equal(second.limits.maxConnections, 2);
    assert.equal(second.limits.messageRate, '120/min');
  });

  it('lists every new route in the OpenAPI document, with a summary', async () => {
    const doc = (await api(t, 'GET', '/api/v1/openapi.json')).body;
    const want: [string, string][] = [
      ['/api/v1/policy', 'get'],
      ['/api/v1/policy', 'put'],
      ['/api/v1/policy/{section}/{name}', 'get'],
      ['/api/v1/policy/{section}/{name}', 'put'],
      ['/api/v1/policy/{section}/{name}', 'delete'],
      ['/api/v1/queues', 'get'],
      ['/api/v1/queues/{name}/pause', 'post'],
      ['/api/v1/queues/{name}/resume', 'post'],
      ['/api/v1/ready-queues', 'get'],
      ['/api/v1/sites/{site}/pause', 'post'],
      ['/api/v1/sites/{site}/resume', 'post'],
      ['/api/v1/sources/{name}/pause', 'post'],
      ['/api/v1/sources/{name}/resume', 'post'],
      ['/api/v1/pauses', 'get'],
      ['/api/v1/actions', 'get'],
      ['/api/v1/actions/{id}', 'delete'],
      ['/api/v1/recipients/retry', 'post'],
      ['/api/v1/recipients/purge', 'post'],
      ['/api/v1/recipients/move', 'post'],
      ['/api/v1/classify', 'post'],
      ['/api/v1/events', 'get'],
      ['/api/v1/stats', 'get'],
      ['/api/v1/webhooks', 'get'],
      ['/api/v1/webhooks/{name}', 'put'],
      ['/api/v1/suppressions', 'get'],
      ['/api/v1/suppressions/{address}', 'put'],
      ['/api/v1/suppressions/import', 'post'],
    ];
    for (const [path, method] of want) {
      const op = doc.paths[path]?.[method];
      assert.ok(op, `${method.toUpperCase()} ${path} is documented`);
      assert.ok(op.summary, `${method.toUpperCase()} ${path} has a summary`);
      assert.ok(op.responses['200'] ?? op.responses['204'], `${path} has a response schema`);
    }
    const put = doc.paths['/api/v1/policy'].put.requestBody.content;
    assert.ok(put['application/yaml'] && put['application/json'], 'PUT takes YAML and JSON');
  });

  it('needs the API key, and never answers with it', async () => {
    const res = await fetch(`${t.http}/api/v1/policy`);
    assert.equal(res.status, 401);
    for (const path of [
      '/api/v1/policy',
      '/api/v1/policy?format=yaml',
      '/api/v1/queues',
      '/api/v1/ready-queues',
      '/api/v1/pauses',
      '/api/v1/actions',
      '/api/v1/openapi.json',
    ]) {
      const { status, text } = await getText(t, path);
      assert.equal(status, 200, path);
      assert.ok(!text.includes(TEST_KEY), `${path} does not contain the API key`);
    }
  });
});

async function deliver(t: TestEngine, to: string): Promise<void> {
  const res = await api(t, 'POST', '/api/v1/messages', { from: 'a@sender.test', to, text: 'hi' });
  assert.equal(res.status, 202, JSON.stringify(res.body));
  await waitForRecord(t, to, 'Delivery');
}

interface ReadyDoc {
  site: string;
  rules: string[];
  limits: { maxConnections: number; messageRate: string | null };
}

/** The ready queue of live.test once `ok` holds for it. */
function liveQueue(t: TestEngine, ok: (r: ReadyDoc) => boolean): Promise<ReadyDoc> {
  return waitFor('the ready queue of live.test', async () => {
    const { body } = await api(t, 'GET', '/api/v1/ready-queues?limit=100');
    const r = (body.readyQueues as ReadyDoc[]).find((x) => x.site === 'mx.live.test');
    return r && ok(r) ? r : undefined;
  });
}
