/**
 * DKIM signatures per second (`npm run bench:dkim`), on the corpus newsletters of 5 KB and
 * 20 KB (test/data/dkim), for RSA-2048 and Ed25519:
 *   - sync: signMessageSync on the main thread, one after another (one core);
 *   - signMessage, as the engine signs: the whole signature on its niced worker threads, one
 *     per core the event loop leaves (sign-offload.ts); 64 messages in flight, the whole
 *     process; the event loop's delay is sampled meanwhile;
 *   - workers: a worker_threads pool (one worker per core, at normal priority) running
 *     signMessageSync, fed the same way: what every core signs with nothing else to do;
 *   - mailauth 4.13.3 dkimSign, one after another, for reference.
 *
 *   node dist/bench/dkim.js [--seconds 3]
 */
import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { dkimSign } from 'mailauth';
import { signMessage, signMessageSync } from '../src/signing/dkim-sign.js';
import type { DkimSigner } from '../src/signing/dkim-sign.js';
import { runConcurrent, type ConcurrentRow } from './support/concurrent.js';

// Messages kept in flight by the concurrent methods: enough to keep every core busy.
const IN_FLIGHT = 64;
const MESSAGES = {
  '5 KB': 'test/data/dkim/16-newsletter-5k.eml',
  '20 KB': 'test/data/dkim/17-newsletter-20k.eml',
};

type Algorithm = DkimSigner['algorithm'];

/** A signer from a PKCS#8 PEM (what a worker receives). */
function signerOf(algorithm: Algorithm, pem: string): DkimSigner {
  const privateKey = createPrivateKey(pem);
  return { domain: 'maildomain.test', selector: 's1', algorithm, privateKey };
}

/** A fresh key of the algorithm, as PKCS#8 PEM. */
function newKeyPem(algorithm: Algorithm): string {
  const pair =
    algorithm === 'rsa-sha256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ed25519');
  return pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** One measured row: signatures per second and the event loop's delay meanwhile (ms). */
type Row = ConcurrentRow;

/** Signs one after another on this thread for `ms`. */
function runSync(message: Buffer, signer: DkimSigner, ms: number): Row {
  let n = 0;
  const started = performance.now();
  while (performance.now() - started < ms) {
    signMessageSync(message, [signer]);
    n++;
  }
  return { perSecond: n / ((performance.now() - started) / 1000) };
}

/** A worker_threads pool that signs whole messages with signMessageSync. */
class WorkerPool {
  private readonly workers: Worker[] = [];
  private readonly waiting = new Map<number, (signed: Buffer) => void>();
  private next = 0;
  private id = 0;

  constructor(size: number, algorithm: Algorithm, pem: string) {
    for (let i = 0; i < size; i++) {
      const worker = new Worker(new URL(import.meta.url), { workerData: { algorithm, pem } });
      worker.on('message', ({ id, signed }: { id: number; signed: Uint8Array }) => {
        this.waiting.get(id)?.(Buffer.from(signed.buffer, signed.byteOffset, signed.length));
        this.waiting.delete(id);
      });
      this.workers.push(worker);
    }
  }

  /** Signs on the next worker in turn; the message is copied to it, the result moved back. */
  sign(message: Buffer): Promise<Buffer> {
    const id = this.id++;
    const worker = this.workers[this.next++ % this.workers.length]!;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      worker.postMessage({ id, message });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** The worker side of WorkerPool. */
function workerMain(): void {
  const { algorithm, pem } = workerData as { algorithm: Algorithm; pem: string };
  const signer = signerOf(algorithm, pem);
  parentPort!.on('message', ({ id, message }: { id: number; message: Uint8Array }) => {
    const signed = signMessageSync(Buffer.from(message), [signer]);
    // Buffer.concat gives a 20 KB result its own ArrayBuffer: move it; copy pooled small ones.
    const own = signed.byteOffset === 0 && signed.length === signed.buffer.byteLength;
    const out = own ? signed : Buffer.from(signed);
    parentPort!.postMessage({ id, signed: out }, [out.buffer as ArrayBuffer]);
  });
}

/** mailauth's dkimSign, one after another, for `ms`. */
async function runMailauth(message: Buffer, algorithm: Algorithm, pem: string, ms: number) {
  const options = {
    signatureData: [
      { signingDomain: 'maildomain.test', selector: 's1', privateKey: pem, algorithm },
    ],
  };
  let n = 0;
  const started = performance.now();
  while (performance.now() - started < ms) {
    const { errors } = await dkimSign(message, options as never);
    if (errors?.length) throw new Error(`mailauth: ${JSON.stringify(errors)}`);
    n++;
  }
  return { perSecond: n / ((performance.now() - started) / 1000) };
}

function line(cells: (string | number)[]): string {
  const widths = [10, 6, 22, 12, 12, 12];
  return cells.map((c, i) => String(c).padEnd(widths[i] ?? 10)).join(' ');
}

function ms(v: number | undefined): string {
  return v === undefined ? '-' : v.toFixed(2);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '3' } } });
  const runMs = Number(values.seconds) * 1000;
  const cores = availableParallelism();
  console.log(
    `Node ${process.version}, ${cores} cores, ${runMs / 1000} s per row, ` +
      `${IN_FLIGHT} in flight for the concurrent methods`,
  );
  console.log(line(['algorithm', 'size', 'method', 'signatures/s', 'loop p99 ms', 'loop max']));
  const results: Record<string, number> = {};
  for (const algorithm of ['rsa-sha256', 'ed25519-sha256'] as const) {
    const pem = newKeyPem(algorithm);
    const signer = signerOf(algorithm, pem);
    const pool = new WorkerPool(cores, algorithm, pem);
    for (const [size, file] of Object.entries(MESSAGES)) {
      const message = readFileSync(file);
      runSync(message, signer, 300); // warm-up
      const rows: [string, Row][] = [
        ['sync, 1 thread', runSync(message, signer, runMs)],
        [
          'signMessage (chosen)',
          await runConcurrent(() => signMessage(message, [signer]), IN_FLIGHT, runMs),
        ],
        [`workers x${cores}`, await runConcurrent(() => pool.sign(message), IN_FLIGHT, runMs)],
        ['mailauth 4.13.3', await runMailauth(message, algorithm, pem, runMs)],
      ];
      for (const [method, row] of rows) {
        const cells = [algorithm.split('-')[0]!, size, method, Math.round(row.perSecond)];
        console.log(line([...cells, ms(row.loopP99Ms), ms(row.loopMaxMs)]));
        results[`${algorithm} ${size} ${method}`] = Math.round(row.perSecond);
      }
    }
    await pool.close();
  }
  console.log(JSON.stringify(results));
}

if (isMainThread) await main();
else workerMain();
