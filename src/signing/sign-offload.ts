/**
 * Signing run off the event loop on a few worker threads that run at the lowest CPU priority
 * (sign-worker.ts): all of it, S/MIME for a certified account (about 0.5 ms for 5 KB) and
 * DKIM from the body hash to the private-key operation.
 *
 * Why workers, and why niced (the engine's benchmark, 2-core machine, 5 KB messages, 20
 * injecting sessions): an RSA-2048 signature costs about 300 µs of CPU, more than half of what
 * the engine spends on a message. On libuv's thread pool (crypto.sign with a callback) the
 * signing threads took cores from the event loop, which answers every client: 1,420-1,440
 * messages a second. The same work on worker threads at nice 19 leaves the event loop its core
 * and signs with what is left: see the README's figures.
 *
 * Why the whole signature and not only the key operation: the event loop is what bounds the
 * engine's rate, and the canonical header data and body hash cost it about 45 µs a message
 * when it made them itself. Now it only copies the message for the worker.
 *
 * Why batches: one postMessage costs the event loop about 20 µs. Requests made while the loop
 * handles one round of I/O go to a worker together when that round ends (setImmediate), and
 * each worker answers a batch with one message. Signers (with their keys) go to a worker once.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { GridpostError, type ErrorCode } from '../errors/catalogue.js';
import type { DkimSigner } from './dkim-sign.js';
import type { SmimeCredential } from './smime-credential.js';
import type { Ref, SignAnswer, SignRequest } from './sign-worker.js';

/** What a worker gives back: the DKIM fields, and the message when S/MIME rewrote it. */
export interface OffLoopResult {
  fields: string;
  body?: Buffer;
}

/** One worker, what it waits for, what is still to send it, and which ids it holds. */
interface Slot {
  worker: Worker;
  pending: Map<number, { resolve: (r: OffLoopResult) => void; reject: (e: Error) => void }>;
  outbox: SignRequest[];
  transfer: ArrayBuffer[];
  held: Set<number>;
}

// One worker per core the event loop leaves: signing runs only on that CPU, so more would not
// help. On the 2-core bench machine one worker kept 68-73 % of the plain rate with RSA-2048,
// two workers 60-67 % (they took turns with the event loop on its core).
const WORKERS = Math.max(1, availableParallelism() - 1);
const WORKER_FILE = new URL('./sign-worker.js', import.meta.url);

const slots: (Slot | undefined)[] = [];
// Ids of the signers that cannot change (frozen, as the maildomains give them) and of the
// credentials (read-only): a worker keeps those; any other signer travels with each request.
const ids = new WeakMap<object, number>();
let nextId = 1;
let nextRequest = 1;
let flushScheduled = false;

/**
 * `wire` (a message in wire form) signed on a signing worker: S/MIME with `account` when given
 * (smime-sign.ts), then DKIM by `signers` (signatureFields in dkim-sign.ts). Rejects with what
 * those throw (GridpostError), or an Error when the worker failed.
 */
export function signOffLoop(
  wire: Buffer,
  signers: readonly DkimSigner[],
  account: SmimeCredential | undefined,
  now: Date,
): Promise<OffLoopResult> {
  const slot = leastBusy();
  // A copy of exactly the message (a Buffer may be a view of a larger pool), moved, not cloned.
  const message = new Uint8Array(wire);
  const request: SignRequest = {
    id: nextRequest++,
    message,
    signers: signers.map((s) => refFor(slot, s, Object.isFrozen(s))),
    now: now.getTime(),
  };
  if (account) request.account = refFor(slot, account, true);
  return new Promise((resolve, reject) => {
    slot.pending.set(request.id, { resolve, reject });
    if (slot.pending.size === 1) slot.worker.ref();
    slot.outbox.push(request);
    slot.transfer.push(message.buffer as ArrayBuffer);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  });
}

/** How a request names a thing: by id once the worker holds it; unkept ones travel each time. */
function refFor<T extends object>(slot: Slot, value: T, keep: boolean): Ref<T> {
  if (!keep) return { value };
  let id = ids.get(value);
  if (id === undefined) ids.set(value, (id = nextId++));
  if (slot.held.has(id)) return { id };
  slot.held.add(id);
  return { id, value };
}

/**
 * Stops every signing worker; what they still had to sign is rejected ("signing worker
 * exited"), as when one dies. The next request starts a new one.
 */
export async function stopSigningWorkers(): Promise<void> {
  await Promise.all(slots.map((slot) => slot?.worker.terminate()));
}

/** Sends every slot its batch. */
function flush(): void {
  flushScheduled = false;
  for (const slot of slots) {
    if (!slot || slot.outbox.length === 0) continue;
    const batch = slot.outbox;
    const transfer = slot.transfer;
    slot.outbox = [];
    slot.transfer = [];
    slot.worker.postMessage(batch, transfer);
  }
}

/** The worker with the fewest signatures waiting, started when missing. */
function leastBusy(): Slot {
  let best: Slot | undefined;
  for (let i = 0; i < WORKERS; i++) {
    const slot = (slots[i] ??= start(i));
    if (!best || slot.pending.size < best.pending.size) best = slot;
  }
  return best!;
}

/** Starts worker i. It keeps the process alive only while it has work. */
function start(i: number): Slot {
  const worker = new Worker(WORKER_FILE);
  const slot: Slot = { worker, pending: new Map(), outbox: [], transfer: [], held: new Set() };
  worker.on('message', (answers: SignAnswer[]) => {
    for (const a of answers) settle(slot, a);
  });
  const fail = (err: Error) => {
    if (slots[i] === slot) slots[i] = undefined; // the next request starts a new one
    for (const p of slot.pending.values()) p.reject(err);
    slot.pending.clear();
    slot.outbox = [];
    slot.transfer = [];
  };
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new Error(`signing worker exited with code ${code}`)));
  // After the listeners: adding a 'message' listener refs the worker's port again.
  worker.unref();
  return slot;
}

function settle(slot: Slot, a: SignAnswer): void {
  const p = slot.pending.get(a.id);
  if (!p) return;
  slot.pending.delete(a.id);
  if (slot.pending.size === 0) slot.worker.unref();
  if ('fields' in a) {
    const body = a.body && Buffer.from(a.body.buffer, a.body.byteOffset, a.body.byteLength);
    p.resolve({ fields: a.fields, body });
  } else if (a.code) p.reject(new GridpostError(a.code as ErrorCode, a.error, { path: a.path }));
  else p.reject(new Error(`signing failed: ${a.error}`));
}
