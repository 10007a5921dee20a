/**
 * A signing worker (worker_threads): makes DKIM-Signature fields for the main thread, at the
 * lowest CPU priority of the system (nice 19 on this thread only), so that the event loop,
 * which answers every SMTP client, always wins a core over signing. Requests arrive in batches
 * and are answered in one message per batch (dkim-offload.ts says why); signers arrive once
 * per worker and are kept by id.
 */
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { GridpostError } from '../errors/catalogue.js';
import { signatureFields, type DkimSigner } from './dkim-sign.js';

/** A signer as a request names it: by id, with the signer itself the first time (or always). */
export interface SignerRef {
  id?: number;
  signer?: DkimSigner;
}

/** One message to sign (in wire form) with its signers; `now` in milliseconds sets t=. */
export interface SignRequest {
  id: number;
  message: Uint8Array;
  signers: SignerRef[];
  now: number;
}

/** The answer: the fields to put on top of the message, or why there are none. */
export type SignAnswer =
  { id: number; fields: string } | { id: number; error: string; code?: string; path?: string };

const signers = new Map<number, DkimSigner>();

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
  try {
    const list = m.signers.map(signerOf);
    const message = Buffer.from(m.message.buffer, m.message.byteOffset, m.message.byteLength);
    return { id: m.id, fields: signatureFields(message, list, new Date(m.now)) };
  } catch (err) {
    if (err instanceof GridpostError) {
      return { id: m.id, error: err.message, code: err.code, path: err.path };
    }
    return { id: m.id, error: err instanceof Error ? err.message : String(err) };
  }
}

function signerOf(ref: SignerRef): DkimSigner {
  if (ref.signer) {
    if (ref.id === undefined) return ref.signer;
    // Frozen, as it was on the main thread: dkim-sign compiles it once.
    signers.set(ref.id, Object.freeze(ref.signer));
    return ref.signer;
  }
  const known = ref.id === undefined ? undefined : signers.get(ref.id);
  if (!known) throw new Error(`no signer ${ref.id} in this worker`);
  return known;
}
