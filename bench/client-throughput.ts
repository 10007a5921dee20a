/**
 * Throughput of the SMTP client: N messages of S bytes over C pipelining sessions to a minimal
 * sink running in a worker thread (its own event loop, as a remote MX would be).
 *
 *   node dist/bench/client-throughput.js [messages=20000] [sessions=20] [bytes=5120] [rounds=3]
 *
 * Not a test: it prints msg/s per round and the client's CPU time per message.
 */
import { once } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import { openSession, RFC5321_TIMEOUTS, type SmtpSession } from '../src/delivery/smtp-client.js';

const TERMINATOR = Buffer.from('\r\n.\r\n');

/** The sink: answers every command at once, one write per received chunk. */
function runSink(): void {
  const server = net.createServer((socket) => new SinkConnection(socket));
  server.listen(0, '127.0.0.1', () => {
    parentPort?.postMessage((server.address() as net.AddressInfo).port);
  });
}

/** One sink connection: a command reader with a data mode that looks only for CRLF.CRLF. */
class SinkConnection {
  #buf: Buffer = Buffer.alloc(0);
  #inData = false;
  #scanFrom = 0;

  constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    socket.write('220 sink ESMTP\r\n');
  }

  #receive(chunk: Buffer): void {
    this.#buf = this.#buf.length > 0 ? Buffer.concat([this.#buf, chunk]) : chunk;
    let pos = 0;
    let out = '';
    for (;;) {
      if (this.#inData) {
        const end = this.#buf.indexOf(TERMINATOR, this.#scanFrom);
        if (end < 0) {
          // The terminator may straddle chunks: rescan its length minus one byte next time.
          this.#scanFrom = Math.max(pos, this.#buf.length - TERMINATOR.length + 1);
          break;
        }
        pos = end + TERMINATOR.length;
        this.#inData = false;
        out += '250 2.0.0 queued\r\n';
        continue;
      }
      const lf = this.#buf.indexOf(0x0a, pos);
      if (lf < 0) break;
      out += this.#command(this.#buf.toString('latin1', pos, pos + 4).toUpperCase());
      pos = lf + 1;
      if (this.#inData) this.#scanFrom = pos - 2;
    }
    this.#buf = this.#buf.subarray(pos);
    this.#scanFrom = Math.max(0, this.#scanFrom - pos);
    if (out) this.socket.write(out);
  }

  #command(verb: string): string {
    switch (verb) {
      case 'EHLO':
        return '250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 52428800\r\n';
      case 'DATA':
        this.#inData = true;
        return '354 go ahead\r\n';
      case 'QUIT':
        setImmediate(() => this.socket.end());
        return '221 bye\r\n';
      default:
        return '250 ok\r\n';
    }
  }
}

/** A message of about `bytes` bytes: headers, 76-column lines, a few starting with a dot. */
function makeBody(bytes: number): Buffer {
  const lines = ['From: bench@src.test', 'To: sink@dst.test', 'Subject: throughput', ''];
  let size = lines.join('\r\n').length;
  for (let i = 0; size < bytes; i++) {
    const line = (i % 20 === 0 ? '.' : '') + `line ${i} `.padEnd(76, 'x');
    lines.push(line);
    size += line.length + 2;
  }
  return Buffer.from(lines.join('\r\n') + '\r\n');
}

async function openAll(port: number, count: number): Promise<SmtpSession[]> {
  const opened = await Promise.all(
    Array.from({ length: count }, () =>
      openSession({
        ip: '127.0.0.1',
        port,
        mxHost: 'sink.test',
        helo: 'bench.gridpost.test',
        tls: 'disabled',
        timeouts: RFC5321_TIMEOUTS,
      }),
    ),
  );
  return opened.map((o) => {
    if (!o.ok) throw new Error(`open failed at ${o.stage}: ${o.reply.code} ${o.reply.text}`);
    return o.session;
  });
}

/** Sends `messages` messages spread over the sessions; returns elapsed ms and failures. */
async function round(sessions: SmtpSession[], messages: number, body: Buffer) {
  let next = 0;
  let failed = 0;
  const env = { from: 'bench@src.test', recipients: ['sink@dst.test'] };
  const started = performance.now();
  const cpu = process.cpuUsage();
  await Promise.all(
    sessions.map(async (s) => {
      while (next < messages) {
        next++;
        const r = await s.send(env, body);
        if (r.recipients[0]?.reply.code !== 250) failed++;
      }
    }),
  );
  const ms = performance.now() - started;
  const used = process.cpuUsage(cpu);
  return { ms, failed, cpuUs: used.user + used.system };
}

async function main(): Promise<void> {
  const [messages = 20_000, sessions = 20, bytes = 5_120, rounds = 3] = process.argv
    .slice(2)
    .map(Number);
  const sink = new Worker(new URL(import.meta.url));
  const [port] = (await once(sink, 'message')) as [number];
  const body = makeBody(bytes);
  const open = await openAll(port, sessions);
  console.log(`${messages} messages of ${body.length} bytes over ${sessions} sessions`);
  await round(open, Math.min(2_000, messages), body); // warm-up: JIT and socket buffers
  for (let i = 1; i <= rounds; i++) {
    const r = await round(open, messages, body);
    const rate = Math.round((messages / r.ms) * 1000);
    const cpuPerMsg = (r.cpuUs / messages).toFixed(1);
    console.log(
      `round ${i}: ${rate} msg/s (${r.ms.toFixed(0)} ms, ${r.failed} failed, ` +
        `client CPU ${cpuPerMsg} us/msg)`,
    );
  }
  await Promise.all(open.map((s) => s.close()));
  await sink.terminate();
}

if (isMainThread) await main();
else runSink();
