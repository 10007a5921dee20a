/**
 * A signing worker (worker_threads): makes RSA signatures for the main thread, at the lowest
 * CPU priority of the system (nice 19 on this thread only), so that the event loop, which
 * answers every SMTP client, always wins a core over signing. Keys arrive once per worker and
 * are kept by id.
 */
import { sign, type KeyObject } from 'node:crypto';
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';

/** A request: sign `data` with key `keyId` (sent along the first time). */
export interface SignRequest {
  id: number;
  digest: string | null;
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

parentPort?.on('message', (m: SignRequest) => {
  if (m.key) keys.set(m.keyId, m.key);
  const key = keys.get(m.keyId);
  let answer: SignAnswer;
  try {
    if (!key) throw new Error(`no key ${m.keyId} in this worker`);
    answer = { id: m.id, signature: sign(m.digest, m.data, key) };
  } catch (err) {
    answer = { id: m.id, error: err instanceof Error ? err.message : String(err) };
  }
  parentPort!.postMessage(answer);
});
