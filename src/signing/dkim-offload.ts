/**
 * The private-key operation of a DKIM signature, run off the event loop: on libuv's thread
 * pool (crypto.sign with a callback), with at most a few operations in the pool at once.
 *
 * Why the thread pool, and why the cap (bench/dkim.ts; figures from the 2-core reference
 * machine while other work ran on it, 20 KB message, 64 messages in flight):
 *   - Signing inline (signMessageSync) blocks the event loop for every signature, about
 *     0.35 ms for RSA-2048, and uses one core.
 *   - A worker_threads pool running the whole signer (canonicalisation too) must copy each
 *     message to a worker and back: it did no better than the thread pool for RSA (where the
 *     key operation is most of the work) and brings worker start-up, failure and shutdown.
 *   - crypto.sign with a callback moves only the key operation, with no copy. Uncapped, 64
 *     jobs keep every pool thread busy: 4 CPU-bound threads plus the main one on 2 cores left
 *     the event loop 8 to 20 ms late at the median (30 ms at p99). Capped at one operation
 *     per core, the loop stayed within 1 ms at the median and 2.5 ms at p99, with the same
 *     throughput (RSA-2048: 3,100 to 3,600 signatures/s against 2,500 to 4,600 uncapped).
 * The cap also leaves pool threads free for fs, dns.lookup and zlib, which share the pool.
 */
import { sign as cryptoSign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { availableParallelism } from 'node:os';

// libuv's pool size: UV_THREADPOOL_SIZE, 4 unless set (read once, as libuv does at start).
const POOL_THREADS = Number(process.env.UV_THREADPOOL_SIZE) || 4;

/**
 * Key operations allowed in the pool at once: one per core, and at least one pool thread
 * always left to file I/O.
 * Limitation: with the default pool of 4 threads, a machine of more than 4 cores signs on at
 * most 3 of them; set UV_THREADPOOL_SIZE to the number of cores plus 2 to use them all.
 */
const MAX_IN_POOL = Math.max(1, Math.min(availableParallelism(), POOL_THREADS - 1));

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
