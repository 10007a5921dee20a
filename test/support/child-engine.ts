/**
 * An engine in a child process (the real `gridpost serve` command), for what an in-process
 * engine cannot show: kill -9 and restart, and the CLI.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { TestWorld } from '../../src/testworld/index.js';
import { TEST_KEY } from './harness.js';

export const CLI = join(process.cwd(), 'dist/src/cli/main.js');

/** A free TCP port on 127.0.0.1 (bound and released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Writes a config file for a child engine delivering into `world`. */
export async function writeChildConfig(world: TestWorld, dataDir: string, extra: object = {}) {
  const smtpPort = await freePort();
  const httpPort = await freePort();
  const config = {
    hostname: 'engine.test',
    dataDir,
    smtp: { listen: `127.0.0.1:${smtpPort}` },
    http: { listen: `127.0.0.1:${httpPort}`, apiKeys: [{ name: 'test', key: TEST_KEY }] },
    delivery: { port: world.smtpPort },
    policy: {
      queues: { default: { retry: ['1s'], jitter: 0, maxAge: '1h' } },
      shaping: { test: { idleTimeout: 0.5, maxConnections: 20 } },
    },
    log: { level: 'warn' },
    ...extra,
  };
  const file = join(dataDir, 'gridpost.yaml');
  writeFileSync(file, stringify(config));
  return { file, smtpPort, httpPort };
}

/** Starts `gridpost serve --config file` and resolves once it says where it listens. */
export async function spawnEngine(configFile: string, world: TestWorld): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', '--config', configFile], {
    env: { ...process.env, GRIDPOST_DNS: world.dns.address },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`engine did not start: ${out}`)), 20_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      if (/HTTP API on/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => reject(new Error(`engine exited with ${code}: ${out}`)));
  });
  child.removeAllListeners('exit');
  return child;
}

/** Kills with SIGKILL and waits for the exit. */
export function kill9(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** What a CLI test sees of a command that failed: its exit code and output. */
export interface CliFailure {
  code: number;
  stdout: string;
  stderr: string;
}

/** A `gridpost serve` child for CLI tests, its test world, and the CLI aimed at it. */
export interface CliHarness {
  world: TestWorld;
  /** A scratch directory (the child's data directory too), removed at the end. */
  dir: string;
  cli(...args: string[]): Promise<{ stdout: string; stderr: string }>;
  /** Runs a command that must fail, and checks how. */
  fails(args: string[], check: (e: CliFailure) => void): Promise<void>;
}

/**
 * Registers before/after hooks in the current suite that start a test world and a child
 * engine, and answers the harness (its fields are set once the before hook has run).
 */
export function cliHarness(prefix: string): CliHarness {
  const exec = promisify(execFile);
  let child: ChildProcess | undefined;
  let common: string[] = [];
  const h = {} as CliHarness;
  h.cli = (...args) => exec(process.execPath, [CLI, ...args, ...common]);
  h.fails = (args, check) =>
    assert.rejects(h.cli(...args), (e: CliFailure) => {
      check(e);
      return true;
    });
  before(async () => {
    h.world = await TestWorld.start();
    h.dir = mkdtempSync(join(tmpdir(), `gridpost-${prefix}-`));
    const { file, httpPort } = await writeChildConfig(h.world, h.dir);
    child = await spawnEngine(file, h.world);
    common = ['--api', `127.0.0.1:${httpPort}`, '--key', TEST_KEY];
  });
  after(async () => {
    if (child) await kill9(child);
    await h.world?.stop();
    if (h.dir) rmSync(h.dir, { recursive: true, force: true });
  });
  return h;
}
