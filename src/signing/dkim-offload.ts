/**
 * The private-key operation of a DKIM signature, run off the event loop: on libuv's thread
 * pool (crypto.sign with a callback), with only a few operations handed to the pool at once.
 *
 * Why the thread pool, and why the cap (bench/dkim.ts on the 2-core reference machine, shared
 * with other work at the time, so figures vary by about 20 %; 64 messages in flight):
 *   - Signing inline (signMessageSync) blocks the event loop for every signature, about
 *     0.35 ms for RSA-2048, and uses one core: 2,600 to 3,000 RSA signatures/s.
 *   - A worker_threads pool (one worker per core) running the whole signer, canonicalisation
 *     included, must copy each message to a worker and back: 4,150 to 4,650 RSA signatures/s
 *     with the event loop 5 ms late at p99. It also brings worker start-up, crash and
 *     shutdown handling.
 *   - crypto.sign with a callback moves only the key operation, with no copy: 4,000 to 4,600
 *     RSA signatures/s with the loop 2 ms late at p99, and more than the workers for Ed25519
 *     on 5 KB messages (17,000/s against 14,000/s; about equal at 20 KB).
 *   - But uncapped, the 64 jobs queue inside libuv, their completions come back in bursts and
 *     each runs the next message's canonicalisation: the loop was 28 to 56 ms late at p99.
 *     Handing the pool one operation per core plus one (so a thread never waits for the main
 *     thread to hand it the next) keeps each burst short.
 * The cap also leaves a pool thread to fs, dns.lookup and zlib, which share the pool.
 */
import { sign as cryptoSign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { availableParallelism } from 'node:os';

// libuv's pool size: UV_THREADPOOL_SIZE, 4 unless set (read once, as libuv does at start).
const POOL_THREADS = Number(process.env.UV_THREADPOOL_SIZE) || 4;

/**
 * Key operations handed to the pool at once: one per core plus one, leaving at least one pool
 * thread to file I/O.
 * Limitation: with the default pool of 4 threads, a machine of more than 2 cores signs on at
 * most 3 threads; set UV_THREADPOOL_SIZE to the number of cores plus 2 to use every core.
 */
const MAX_IN_POOL = Math.max(1, Math.min(availableParallelism() + 1, POOL_THREADS - 1));

let inPool = 0;
const waiting: (() => void)[] = [];

/**
 * Signs `data` with the key on the thread pool: RSASSA-PKCS1-v1_5 over SHA-256 when digest is
 * 'sha256', plain Ed25519 when it is null. Resolves with the signature bytes.
 */
export function signInPool(digest: string | null, data: Buffer, key: KeyObject): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const start = (): void => {
      inPool++;
      const done = (err: Error | null, signature?: Buffer): void => {
        inPool--;
        waiting.shift()?.();
        if (err) reject(err);
        else resolve(signature!);
      };
      try {
        cryptoSign(digest, data, key, done);
      } catch (err) {
        done(err as Error); // refused before reaching the pool (a key that cannot sign)
      }
    };
    if (inPool < MAX_IN_POOL) start();
    else waiting.push(start);
  });
}
