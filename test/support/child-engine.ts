/**
 * An engine in a child process (the real `gridpost serve` command), for what an in-process
 * engine cannot show: kill -9 and restart, and the CLI.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { TestWorld } from '../../src/testworld/index.js';
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
