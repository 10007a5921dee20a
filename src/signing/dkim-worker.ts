/**
 * A signing worker (worker_threads): makes DKIM signatures for the main thread, at the lowest
 * CPU priority of the system (nice 19 on this thread only), so that the event loop, which
 * answers every SMTP client, always wins a core over signing. Requests arrive in batches and
 * are answered in one message per batch (dkim-offload.ts says why); keys arrive once per
 * worker and are kept by id.
 */
import { createHash, sign, type KeyObject } from 'node:crypto';
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';

/**
 * One signature to make over `data` with key `keyId` (sent along the first time):
 * 'rsa-sha256' is RSASSA-PKCS1-v1_5 over SHA-256 of data; 'ed25519-sha256' is Ed25519 over
 * SHA-256 of data (RFC 8463 §3: the canonical header data is hashed, then signed).
 */
export interface SignRequest {
  id: number;
  algorithm: 'rsa-sha256' | 'ed25519-sha256';
  data: Uint8Array;
  keyId: number;
  key?: KeyObject;
}

/** The answer: the signature, or why there is none. */
export type SignAnswer = { id: number; signature: Uint8Array } | { id: number; error: string };

const keys = new Map<number, KeyObject>();

// setPriority(0, ...) is per thread on Linux (NPTL): only this worker is niced. Where it is not
// allowed, signing simply runs at normal priority.
try {
  setPriority(19);
} catch {
  // Limitation: without the right to lower its priority the worker competes with the event
  // loop like any thread.
}

parentPort?.on('message', (batch: SignRequest[]) => {
  parentPort!.postMessage(batch.map(answer));
});

function answer(m: SignRequest): SignAnswer {
  if (m.key) keys.set(m.keyId, m.key);
  const key = keys.get(m.keyId);
  try {
    if (!key) throw new Error(`no key ${m.keyId} in this worker`);
    const signature =
      m.algorithm === 'rsa-sha256'
        ? sign('sha256', m.data, key)
        : sign(null, createHash('sha256').update(m.data).digest(), key);
    return { id: m.id, signature };
  } catch (err) {
    return { id: m.id, error: err instanceof Error ? err.message : String(err) };
  }
}
