/**
 * A signing worker (worker_threads): signs messages for the main thread (S/MIME for a certified
 * account, then DKIM), at the lowest CPU priority of the system (nice 19 on this thread only),
 * so that the event loop, which answers every SMTP client, always wins a core over signing.
 * Requests arrive in batches and are answered in one message per batch (sign-offload.ts says
 * why); signers and credentials arrive once per worker and are kept by id.
 */
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { GridpostError } from '../errors/catalogue.js';
import { wireForm } from './dkim-canon.js';
import { signatureFields, type DkimSigner } from './dkim-sign.js';
import type { SmimeCredential } from './smime-credential.js';
import { smimeSign } from './smime-sign.js';

/** A signer or credential as a request names it: by id, with the thing itself the first time. */
export interface Ref<T> {
  id?: number;
  value?: T;
}

/** One message (in wire form) to sign with a credential and signers; `now` (ms) sets t=. */
export interface SignRequest {
  id: number;
  message: Uint8Array;
  account?: Ref<SmimeCredential>;
  signers: Ref<DkimSigner>[];
  now: number;
}

/**
 * The answer: the DKIM fields to put on top of the message, and the message itself when
 * S/MIME rewrote it; or why there is nothing.
 */
export type SignAnswer =
  | { id: number; fields: string; body?: Uint8Array }
  | { id: number; error: string; code?: string; path?: string };

// What this worker holds, by the main thread's ids. Limitation: kept for the worker's life; a
// key or certificate replaced on the main thread leaves its old copy here (a few KB each).
const signers = new Map<number, DkimSigner>();
const credentials = new Map<number, SmimeCredential>();

// setPriority(0, ...) is per thread on Linux (NPTL): only this worker is niced. Where it is not
// allowed, signing simply runs at normal priority.
try {
  setPriority(19);
} catch {
  // Limitation: without the right to lower its priority the worker competes with the event
  // loop like any thread.
}

parentPort?.on('message', (batch: SignRequest[]) => {
  const transfer: ArrayBuffer[] = [];
  const answers = batch.map((m) => answer(m, transfer));
  parentPort!.postMessage(answers, transfer);
});

function answer(m: SignRequest, transfer: ArrayBuffer[]): SignAnswer {
  try {
    const now = new Date(m.now);
    const list = m.signers.map((ref) => held(signers, ref, 'signer'));
    let message = Buffer.from(m.message.buffer, m.message.byteOffset, m.message.byteLength);
    if (m.account)
      message = wireForm(smimeSign(message, held(credentials, m.account, 'account'), now));
    const fields = list.length > 0 ? signatureFields(message, list, now) : '';
    if (!m.account) return { id: m.id, fields };
    // Moved back, not cloned: a copy first when the buffer is a view of a larger one.
    const own = message.byteOffset === 0 && message.length === message.buffer.byteLength;
    const body = own ? new Uint8Array(message.buffer, 0, message.length) : new Uint8Array(message);
    transfer.push(body.buffer as ArrayBuffer);
    return { id: m.id, fields, body };
  } catch (err) {
    if (err instanceof GridpostError) {
      return { id: m.id, error: err.message, code: err.code, path: err.path };
    }
    return { id: m.id, error: err instanceof Error ? err.message : String(err) };
  }
}

/** The thing a reference names: sent along (kept when it has an id), or kept before. */
function held<T extends object>(kept: Map<number, T>, ref: Ref<T>, what: string): T {
  if (ref.value) {
    // Frozen, as it was on the main thread: dkim-sign compiles a frozen signer once.
    if (ref.id !== undefined) kept.set(ref.id, Object.freeze(ref.value));
    return ref.value;
  }
  const known = ref.id === undefined ? undefined : kept.get(ref.id);
  if (!known) throw new Error(`no ${what} ${ref.id} in this worker`);
  return known;
}
