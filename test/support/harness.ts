/**
 * Test harness: an engine started in-process against a test world, with a fresh data
 * directory, short timeouts and fast retries, plus small helpers to inject and to wait.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { generate } from 'selfsigned';
import { validateConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import {
  RFC5321_TIMEOUTS,
  openSession,
  type TransactionResult,
} from '../../src/delivery/smtp-client.js';
import { Engine } from '../../src/engine/engine.js';
import type { AttemptRecord, GridpostRecord, StoredRecord } from '../../src/records/types.js';
import type { TestWorld } from '../../src/testworld/index.js';

/** Fast settings for tests: retries within seconds, timeouts in hundreds of milliseconds. */
export function testConfig(world: TestWorld | null, dataDir: string, extra: ConfigInput = {}) {
  const base: ConfigInput = {
    hostname: 'engine.test',
    dataDir,
    smtp: { listen: '127.0.0.1:0' },
    http: { listen: '127.0.0.1:0', apiKeys: [{ name: 'test', key: TEST_KEY }] },
    delivery: {
      port: world?.smtpPort ?? 25,
      holdAfterFailure: 0.2,
      timeouts: {
        connect: 2,
        greeting: 2,
        ehlo: 2,
        mail: 2,
        rcpt: 2,
        dataInit: 2,
        dataBlock: 2,
        dataDone: 2,
      },
    },
    policy: {
      queues: { default: { retry: ['1s'], jitter: 0, maxAge: '30s' } },
      // The limits of the previous release, which the older tests were written against.
      shaping: { test: { idleTimeout: 0.3, maxConnections: 20, maxMessagesPerConnection: 1000 } },
    },
    dns: { servers: world ? [world.dns.address] : undefined, cache: 0.2, timeout: 1, tries: 1 },
    log: { level: process.env.GRIDPOST_TEST_LOG ?? 'silent' },
  };
  return validateConfig(merge(base, extra));
}

export const TEST_KEY = 'test-key-0123456789abcdef';

/** A running engine for a test, cleaned up by stop(). */
export interface TestEngine {
  engine: Engine;
  smtpPort: number;
  http: string;
  dataDir: string;
  stop(opts?: { keepData?: boolean }): Promise<void>;
}

let tlsFiles: Promise<{ cert: string; key: string }> | null = null;

/** One intake certificate for the whole test process (RSA key generation is slow). */
export function testTlsFiles(): Promise<{ cert: string; key: string }> {
  tlsFiles ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gridpost-tls-'));
    // The files serve engines until the process ends, so they go only then.
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const pems = await generate([{ name: 'commonName', value: 'engine.test' }], { keySize: 2048 });
    writeFileSync(join(dir, 'key.pem'), pems.private, { mode: 0o600 });
    writeFileSync(join(dir, 'cert.pem'), pems.cert);
    return { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
  })();
  return tlsFiles;
}

/** Starts an engine with testConfig (merged with `extra`). */
export async function startEngine(
  world: TestWorld | null,
  extra: ConfigInput = {},
  dataDir?: string,
) {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), 'gridpost-test-'));
  const tls = await testTlsFiles();
  const config = testConfig(world, dir, merge({ smtp: { tls } }, extra));
  const log = pino({ level: config.log.level });
  const engine = await Engine.start(config, { log });
  const t: TestEngine = {
    engine,
    smtpPort: engine.listening.smtp.port,
    http: `http://127.0.0.1:${engine.listening.http.port}`,
    dataDir: dir,
    async stop(opts = {}) {
      await engine.stop();
      if (!opts.keepData) rmSync(dir, { recursive: true, force: true });
    },
  };
  return t;
}

/** Sends one message into the engine over SMTP with our own client; returns the result. */
export async function injectSmtp(
  port: number,
  from: string,
  to: string[],
  body: string | Buffer,
): Promise<TransactionResult> {
  const opened = await openSession({
    ip: '127.0.0.1',
    port,
    mxHost: 'localhost',
    helo: 'client.test',
    tls: 'disabled',
    timeouts: { ...RFC5321_TIMEOUTS, greeting: 5000, dataDone: 10000 },
  });
  if (!opened.ok) throw new Error(`cannot connect to the engine: ${opened.reply.text}`);
  const data = typeof body === 'string' ? Buffer.from(body.replace(/\r?\n/g, '\r\n')) : body;
  const result = await opened.session.send({ from, recipients: to }, data);
  await opened.session.close();
  return result;
}

/** A small RFC 5322 message. */
export function simpleMessage(from: string, to: string, subject = 'test', body = 'Hello.'): string {
  return `From: <${from}>\r\nTo: <${to}>\r\nSubject: ${subject}\r\n\r\n${body}\r\n`;
}

/** Calls the engine's API with the test key. */
export async function api(t: TestEngine, method: string, path: string, body?: unknown) {
  const res = await fetch(`${t.http}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${TEST_KEY}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read any JSON shape
  return { status: res.status, body: (await res.json().catch(() => null)) as any };
}

/** Waits until `check` returns a truthy value, or fails with `what` after `ms`. */
export async function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  ms = 10_000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Every record of an address, once `type` has appeared `count` times among them. */
export function recordsOf(t: TestEngine, address: string): StoredRecord[] {
  return t.engine.recorder.forRecipient(address);
}

/** The record type for a record type name. */
export type RecordOf<K extends StoredRecord['type']> = (K extends AttemptRecord['type']
  ? AttemptRecord
  : Extract<GridpostRecord, { type: K }>) & { seq: number };

/** Waits for a record of `type` about `address`; returns it. */
export function waitForRecord<K extends StoredRecord['type']>(
  t: TestEngine,
  address: string,
  type: K,
  ms = 10_000,
): Promise<RecordOf<K>> {
  const find = () => recordsOf(t, address).find((r) => r.type === type) as RecordOf<K> | undefined;
  return waitFor(`${type} for ${address}`, find, ms);
}

type Tree = Record<string, unknown>;

/** Deep-merges plain objects; arrays and scalars of `b` replace those of `a`. */
function merge<T>(a: T, b: unknown): T {
  if (typeof a !== 'object' || a === null || Array.isArray(a))
    return (b === undefined ? a : b) as T;
  const out: Tree = { ...(a as Tree) };
  for (const [k, v] of Object.entries((b ?? {}) as Tree)) out[k] = k in out ? merge(out[k], v) : v;
  return out as T;
}
