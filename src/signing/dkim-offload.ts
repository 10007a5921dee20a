/**
 * The private-key operation of a DKIM signature, run off the event loop on a few worker
 * threads that run at the lowest CPU priority (dkim-worker.ts).
 *
 * Why workers, and why niced (the engine's benchmark, 2-core machine, 5 KB messages, 20
 * injecting sessions): an RSA-2048 signature costs about 300 µs of CPU, more than half of what
 * the engine spends on a message. On libuv's thread pool (crypto.sign with a callback) the
 * signing threads took cores from the event loop, which answers every client: 1,420-1,440
 * messages a second. The same work on worker threads at nice 19 leaves the event loop its core
 * and signs with what is left: see the README's figures. Ed25519 comes here too: its signature
 * costs about 50 µs through node:crypto, and on the event loop that was 3-4 points of the
 * benchmark's rate.
 *
 * Why batches: one postMessage costs the event loop about 20 µs, as much as the rest of a
 * signature's preparation. Requests made while the loop handles one round of I/O go to a
 * worker together when that round ends (setImmediate), and each worker answers a batch with one
 * message. A request carries only the canonical header bytes (a few hundred) and a key id;
 * keys go to a worker once.
 */
import type { KeyObject } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { SignAnswer, SignRequest } from './dkim-worker.js';

/** One worker, what it waits for, what is still to send it, and which keys it holds. */
interface Slot {
  worker: Worker;
  pending: Map<number, { resolve: (b: Buffer) => void; reject: (e: Error) => void }>;
  outbox: SignRequest[];
  keys: Set<number>;
}

// One worker per core the event loop leaves: signing runs only on that CPU, so more would not
// help. On the 2-core bench machine one worker kept 68-73 % of the plain rate with RSA-2048,
// two workers 60-67 % (they took turns with the event loop on its core).
const WORKERS = Math.max(1, availableParallelism() - 1);
const WORKER_FILE = new URL('./dkim-worker.js', import.meta.url);

const slots: (Slot | undefined)[] = [];
const keyIds = new WeakMap<KeyObject, number>();
let nextKeyId = 1;
let nextRequest = 1;
let flushScheduled = false;

/**
 * Signs `data` (the canonical header data) with the key on a signing worker, as the DKIM
 * algorithm says. Resolves with the signature bytes.
 */
export function signOffLoop(
  algorithm: SignRequest['algorithm'],
  data: Buffer,
  key: KeyObject,
): Promise<Buffer> {
  const slot = leastBusy();
  const keyId = idOf(key);
  const request: SignRequest = { id: nextRequest++, algorithm, data, keyId };
  if (!slot.keys.has(keyId)) {
    request.key = key;
    slot.keys.add(keyId);
  }
  return new Promise((resolve, reject) => {
    slot.pending.set(request.id, { resolve, reject });
    if (slot.pending.size === 1) slot.worker.ref();
    slot.outbox.push(request);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  });
}

/** Sends every slot its batch. */
function flush(): void {
  flushScheduled = false;
  for (const slot of slots) {
    if (!slot || slot.outbox.length === 0) continue;
    const batch = slot.outbox;
    slot.outbox = [];
    slot.worker.postMessage(batch);
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
  const slot: Slot = { worker, pending: new Map(), outbox: [], keys: new Set() };
  worker.on('message', (answers: SignAnswer[]) => {
    for (const a of answers) settle(slot, a);
  });
  const fail = (err: Error) => {
    if (slots[i] === slot) slots[i] = undefined; // the next request starts a new one
    for (const p of slot.pending.values()) p.reject(err);
    slot.pending.clear();
    slot.outbox = [];
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
  if ('error' in a) p.reject(new Error(`signing failed: ${a.error}`));
  else p.resolve(Buffer.from(a.signature.buffer, a.signature.byteOffset, a.signature.byteLength));
}

function idOf(key: KeyObject): number {
  let id = keyIds.get(key);
  if (id === undefined) {
    id = nextKeyId++;
    keyIds.set(key, id);
  }
  return id;
}
