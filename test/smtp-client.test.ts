// The outbound SMTP client against a scripted server on real loopback sockets, plus table-driven
// tests of its reply parser and dot-stuffing, and one interop run against smtp-server.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { generate } from 'selfsigned';
import { SMTPServer } from 'smtp-server';
import { formatReply, type SmtpReply } from '../src/delivery/reply.js';
import {
  dataBlocks,
  dataPieces,
  openSession,
  ReplyParser,
  type ClientTimeouts,
  type SessionOptions,
  type SmtpSession,
  type TransactionResult,
} from '../src/delivery/smtp-client.js';

// ------------------------------------------------------------------------------------------
// A scripted SMTP server, small on purpose: it answers per command, can stall, drop, split
// replies into several TCP chunks, do STARTTLS, and records exactly what came over the wire.

/** What the server does instead of (or after) a reply. */
type Action =
  | string // reply lines separated by "\n"; CRLF is added
  | { pieces: string[] } // raw bytes written in separate TCP chunks
  | { stall: true } // never answer, stop reading commands
  | { drop: true } // destroy the connection without a reply
  | { reply: string; close: true }; // answer, then close

interface Script {
  greeting?: Action;
  /** EHLO keywords; STARTTLS is added before TLS when starttls is set. */
  extensions?: string[];
  ehlo?: Action;
  /** offer; refuse (454); garbage: 220, then plaintext junk instead of a TLS handshake;
   *  inject: 220 and a forged reply in the same write (a response-injection attempt). */
  starttls?: 'offer' | 'refuse' | 'garbage' | 'inject';
  command?: (verb: string, line: string, c: ConnInfo) => Action | undefined;
  afterDot?: (m: Received, c: ConnInfo) => Action | undefined;
  dropAfterDataBytes?: number;
  pauseInData?: boolean;
}

interface Received {
  /** The data as it came over the wire, terminator included. */
  wire: Buffer;
  /** The data with dot-stuffing removed, without the terminator. */
  content: Buffer;
  from: string;
  to: string[];
}

interface ConnInfo {
  remoteAddress: string;
  tls: boolean;
  /** Every command line with the index of the TCP chunk it arrived in. */
  lines: { line: string; chunk: number }[];
  chunks: number;
  dataBytes: number;
}

const DEFAULT_EXTENSIONS = ['PIPELINING', 'SIZE 10000000', '8BITMIME', 'SMTPUTF8'];

let secureContext: tls.SecureContext | undefined;

class ScriptedServer {
  readonly conns: ConnInfo[] = [];
  readonly messages: Received[] = [];
  readonly #sockets = new Set<net.Socket>();
  readonly #server: net.Server;

  private constructor(readonly script: Script) {
    this.#server = net.createServer((s) => this.#accept(s));
  }

  static async start(script: Script, host = '127.0.0.1'): Promise<ScriptedServer> {
    const srv = new ScriptedServer(script);
    srv.#server.listen(0, host);
    await once(srv.#server, 'listening');
    return srv;
  }

  get port(): number {
    return (this.#server.address() as net.AddressInfo).port;
  }

  verbs(conn = 0): string[] {
    return (this.conns[conn]?.lines ?? []).map((l) => l.line.split(/[ :]/)[0] ?? '');
  }

  async stop(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    this.#server.close();
    await once(this.#server, 'close');
  }

  track(s: net.Socket): void {
    this.#sockets.add(s);
    s.on('close', () => this.#sockets.delete(s));
  }

  #accept(socket: net.Socket): void {
    this.track(socket);
    const info: ConnInfo = {
      remoteAddress: socket.remoteAddress ?? '',
      tls: false,
      lines: [],
      chunks: 0,
      dataBytes: 0,
    };
    this.conns.push(info);
    new ServerConn(this, socket, info).start();
  }
}

/** One connection of the scripted server. */
class ServerConn {
  #buf = Buffer.alloc(0);
  #mode: 'command' | 'data' = 'command';
  #halted = false;
  #writing = false;
  #from = '';
  #to: string[] = [];

  constructor(
    readonly srv: ScriptedServer,
    public socket: net.Socket,
    readonly info: ConnInfo,
  ) {}

  start(): void {
    this.socket.setNoDelay(true);
    this.#listen(this.socket);
    this.#act(this.srv.script.greeting ?? '220 mx.test ESMTP scripted');
  }

  #listen(s: net.Socket): void {
    s.on('data', this.#onData);
    s.on('error', () => undefined);
  }

  #onData = (chunk: Buffer): void => {
    this.info.chunks++;
    this.#buf = Buffer.concat([this.#buf, chunk]);
    this.#pump();
  };

  #pump(): void {
    while (!this.#halted && !this.#writing) {
      if (this.#mode === 'data') {
        if (!this.#takeData()) return;
        continue;
      }
      const end = this.#buf.indexOf('\r\n');
      if (end < 0) return;
      const line = this.#buf.toString('utf8', 0, end);
      this.#buf = this.#buf.subarray(end + 2);
      this.info.lines.push({ line, chunk: this.info.chunks });
      if (this.#command(line) === 'upgraded') return;
    }
  }

  #command(line: string): 'upgraded' | void {
    const verb = (line.split(/[ :]/)[0] ?? '').toUpperCase();
    const action = this.srv.script.command?.(verb, line, this.info) ?? this.#standard(verb);
    const code = replyCode(action);
    if (verb === 'MAIL' || verb === 'RSET') this.#from = verb === 'MAIL' ? line : '';
    if (verb === 'MAIL' || verb === 'RSET') this.#to = [];
    if (verb === 'RCPT' && code >= 200 && code < 300) this.#to.push(line);
    this.#act(action);
    if (verb === 'DATA' && code === 354) this.#enterData();
    if (verb === 'STARTTLS' && code === 220) return this.#startTls();
  }

  #standard(verb: string): Action {
    switch (verb) {
      case 'EHLO':
        return this.srv.script.ehlo ?? this.#ehlo();
      case 'HELO':
        return '250 mx.test';
      case 'MAIL':
        return '250 2.1.0 Ok';
      case 'RCPT':
        return '250 2.1.5 Ok';
      case 'DATA':
        return this.#to.length > 0
          ? '354 End data with <CR><LF>.<CR><LF>'
          : '554 5.5.1 No valid recipients';
      case 'RSET':
      case 'NOOP':
        return '250 2.0.0 Ok';
      case 'QUIT':
        return { reply: '221 2.0.0 Bye', close: true };
      case 'STARTTLS':
        return this.#starttlsReply();
      default:
        return '502 5.5.2 Command not recognized';
    }
  }

  #starttlsReply(): string {
    const mode = this.srv.script.starttls;
    if (mode === 'refuse') return '454 4.7.0 TLS not available';
    return mode === 'inject' ? '220 2.0.0 Ready\n250 2.1.0 forged' : '220 2.0.0 Ready';
  }

  #ehlo(): string {
    const ext = [...(this.srv.script.extensions ?? DEFAULT_EXTENSIONS)];
    if (this.srv.script.starttls && !this.info.tls) ext.push('STARTTLS');
    return ['mx.test greets you', ...ext]
      .map((l, i, all) => `250${i === all.length - 1 ? ' ' : '-'}${l}`)
      .join('\n');
  }

  #enterData(): void {
    this.#mode = 'data';
    if (!this.srv.script.pauseInData) return;
    this.socket.pause();
    this.#halted = true;
  }

  /** Takes one complete message from the buffer; false while it is incomplete. */
  #takeData(): boolean {
    this.info.dataBytes = this.#buf.length;
    const drop = this.srv.script.dropAfterDataBytes;
    if (drop !== undefined && this.#buf.length >= drop) {
      this.socket.destroy();
      this.#halted = true;
      return false;
    }
    const empty = this.#buf.subarray(0, 3).toString() === '.\r\n';
    const at = empty ? -2 : this.#buf.indexOf('\r\n.\r\n');
    if (at < 0 && !empty) return false;
    const wire = Buffer.from(this.#buf.subarray(0, at + 5));
    const content = unstuff(this.#buf.subarray(0, at + 2));
    this.#buf = this.#buf.subarray(at + 5);
    this.#mode = 'command';
    const m: Received = { wire, content, from: this.#from, to: this.#to };
    this.srv.messages.push(m);
    this.#act(this.srv.script.afterDot?.(m, this.info) ?? '250 2.0.0 Ok: queued as T1');
    return true;
  }

  #startTls(): 'upgraded' {
    const mode = this.srv.script.starttls;
    if (mode === 'garbage' || mode === 'inject') {
      const junk = 'this is not a TLS record\r\n'.repeat(4);
      if (mode === 'garbage') setTimeout(() => this.socket.write(junk), 50);
      this.#halted = true;
      return 'upgraded';
    }
    this.socket.off('data', this.#onData);
    const secure = new tls.TLSSocket(this.socket, { isServer: true, secureContext });
    this.srv.track(secure);
    this.socket = secure;
    this.info.tls = true;
    this.#listen(secure);
    return 'upgraded';
  }

  #act(action: Action): void {
    if (typeof action === 'string') {
      this.socket.write(toWire(action));
    } else if ('pieces' in action) {
      void this.#writePieces(action.pieces);
    } else if ('stall' in action) {
      this.#halted = true;
    } else if ('drop' in action) {
      this.#halted = true;
      this.socket.destroy();
    } else {
      this.#halted = true;
      this.socket.end(toWire(action.reply));
    }
  }

  /** Writes each piece in its own TCP chunk; holds back further replies meanwhile. */
  async #writePieces(pieces: string[]): Promise<void> {
    this.#writing = true;
    for (const p of pieces) {
      this.socket.write(p);
      await delay(15);
    }
    this.#writing = false;
    this.#pump();
  }
}

/** The reply code an action sends, 0 when it sends none. */
function replyCode(action: Action): number {
  if (typeof action === 'string') return Number(action.slice(0, 3));
  if ('pieces' in action) return Number(action.pieces.join('').slice(0, 3));
  return 'reply' in action ? Number(action.reply.slice(0, 3)) : 0;
}

function toWire(reply: string): string {
  return reply
    .split('\n')
    .map((l) => `${l}\r\n`)
    .join('');
}

/** Removes dot-stuffing from data that ends with CRLF (or is empty). */
function unstuff(data: Buffer): Buffer {
  const lines = data.toString('latin1').split('\r\n');
  return Buffer.from(lines.map((l) => (l.startsWith('.') ? l.slice(1) : l)).join('\r\n'), 'latin1');
}

// ------------------------------------------------------------------------------------------
// Helpers

function timeouts(ms: number, over: Partial<ClientTimeouts> = {}): ClientTimeouts {
  return {
    connect: ms,
    greeting: ms,
    ehlo: ms,
    starttls: ms,
    mail: ms,
    rcpt: ms,
    dataInit: ms,
    dataBlock: ms,
    dataDone: ms,
    quit: ms,
    ...over,
  };
}

function options(port: number, over: Partial<SessionOptions> = {}): SessionOptions {
  return {
    ip: '127.0.0.1',
    port,
    mxHost: 'mx.test',
    helo: 'out.gridpost.test',
    tls: 'disabled',
    timeouts: timeouts(5_000),
    ...over,
  };
}

/** Runs fn with a fresh server and a session on it; both are always cleaned up. */
async function withSession(
  script: Script,
  fn: (s: SmtpSession, srv: ScriptedServer) => Promise<void>,
  over: Partial<SessionOptions> = {},
): Promise<void> {
  const srv = await ScriptedServer.start(script);
  let session: SmtpSession | undefined;
  try {
    const opened = await openSession(options(srv.port, over));
    assert.ok(opened.ok, `open failed: ${opened.ok ? '' : formatReply(opened.reply)}`);
    session = opened.session;
    await fn(session, srv);
  } finally {
    session?.destroy();
    await srv.stop();
  }
}

function replies(r: TransactionResult): string[] {
  return r.recipients.map((x) => formatReply(x.reply));
}

const fmt = (r: SmtpReply | undefined): string | undefined => r && formatReply(r);

const THREE = ['a@d.test', 'b@d.test', 'c@d.test'];
const BODY = Buffer.from('Subject: test\r\n\r\nHello\r\n');

before(async () => {
  const pems = await generate([{ name: 'commonName', value: 'mx.test' }], { keyType: 'ec' });
  secureContext = tls.createSecureContext({ key: pems.private, cert: pems.cert });
});

// ------------------------------------------------------------------------------------------
// Pure parts: reply parsing and dot-stuffing

describe('ReplyParser', () => {
  const cases: { name: string; input: string; want: string[] }[] = [
    { name: 'one line', input: '250 2.1.0 Ok\r\n', want: ['250 2.1.0 Ok'] },
    {
      name: 'multi-line keeps every line',
      input: '250-mx.test hi\r\n250-PIPELINING\r\n250 SIZE 100\r\n',
      want: ['250 mx.test hi / PIPELINING / SIZE 100'],
    },
    {
      name: 'two replies in one chunk',
      input: '250 2.1.0 Ok\r\n550-5.1.1 no such user\r\n550 5.1.1 really\r\n',
      want: ['250 2.1.0 Ok', '550 5.1.1 no such user / really'],
    },
    { name: 'bare LF line ends', input: '220 hi\n421 bye\n', want: ['220 hi', '421 bye'] },
    { name: 'code alone', input: '250\r\n', want: ['250 '] },
  ];
  for (const c of cases) {
    it(`${c.name}, split at every byte`, () => {
      const bytes = Buffer.from(c.input);
      for (let cut = 0; cut <= bytes.length; cut++) {
        const p = new ReplyParser();
        const out: SmtpReply[] = [];
        assert.equal(p.feed(bytes.subarray(0, cut), out), null);
        assert.equal(p.feed(bytes.subarray(cut), out), null);
        assert.deepEqual(out.map(formatReply), c.want, `cut at ${cut}`);
        assert.equal(p.buffered, false);
      }
    });
  }

  it('rejects malformed lines and endless lines', () => {
    assert.match(new ReplyParser().feed(Buffer.from('hello\r\n'), []) ?? '', /malformed/);
    assert.match(new ReplyParser().feed(Buffer.alloc(9000, 0x41), []) ?? '', /longer than/);
  });
});

/** An independent, slow reference: normalise line ends, stuff dots, terminate. */
function referenceData(input: string): string {
  if (input === '') return '.\r\n';
  let text = input.replace(/\r\n|\r|\n/g, '\r\n');
  if (!text.endsWith('\r\n')) text += '\r\n';
  const lines = text.slice(0, -2).split('\r\n');
  return lines.map((l) => (l.startsWith('.') ? `.${l}` : l)).join('\r\n') + '\r\n.\r\n';
}

function wireOf(input: string): string {
  return Buffer.concat([...dataPieces(Buffer.from(input, 'latin1'))]).toString('latin1');
}

describe('dot-stuffing and line-end normalisation', () => {
  const cases: [name: string, input: string, want: string][] = [
    ['empty body', '', '.\r\n'],
    ['plain', 'a\r\nb\r\n', 'a\r\nb\r\n.\r\n'],
    ['no final CRLF', 'a\r\nb', 'a\r\nb\r\n.\r\n'],
    ['body starts with a dot', '.a\r\n', '..a\r\n.\r\n'],
    ['body is one dot', '.', '..\r\n.\r\n'],
    ['a line that is a dot', 'a\r\n.\r\nb\r\n', 'a\r\n..\r\nb\r\n.\r\n'],
    ['dot lines', '..\r\n...', '...\r\n....\r\n.\r\n'],
    ['smuggling \\n.\\n', 'a\n.\nb\r\n', 'a\r\n..\r\nb\r\n.\r\n'],
    ['smuggling \\r.\\r\\n', 'a\r.\r\nb\r\n', 'a\r\n..\r\nb\r\n.\r\n'],
    ['smuggling \\n.\\r\\n', 'a\n.\r\nb', 'a\r\n..\r\nb\r\n.\r\n'],
    ['smuggling \\r\\n.\\r', 'a\r\n.\rb', 'a\r\n..\r\nb\r\n.\r\n'],
    ['CR CR LF', 'a\r\r\nb', 'a\r\n\r\nb\r\n.\r\n'],
    ['LF CR', 'a\n\rb', 'a\r\n\r\nb\r\n.\r\n'],
    ['trailing bare CR', 'a\r', 'a\r\n.\r\n'],
    ['trailing bare LF', 'a\n', 'a\r\n.\r\n'],
    ['only CRLF', '\r\n', '\r\n.\r\n'],
  ];
  for (const [name, input, want] of cases) {
    it(name, () => {
      assert.equal(wireOf(input), want);
      assert.equal(referenceData(input), want, 'the reference agrees');
    });
  }

  it('matches the reference on random bodies of dots, CRs, LFs and letters', () => {
    let seed = 42;
    const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const alphabet = ['.', '\r', '\n', 'a', '\r\n'];
    for (let n = 0; n < 2000; n++) {
      const len = Math.floor(rand() * 24);
      let input = '';
      for (let i = 0; i < len; i++) input += alphabet[Math.floor(rand() * alphabet.length)];
      const got = wireOf(input);
      assert.equal(got, referenceData(input), JSON.stringify(input));
      assert.doesNotMatch(got, /\r(?!\n)|(?<!\r)\n/, 'no bare CR or LF on the wire');
      assert.ok(!got.slice(0, -3).includes('\r\n.\r\n'), 'the terminator appears only at the end');
    }
  });

  it('groups big bodies into blocks of at most 64 KiB with the same bytes', () => {
    const line = '.dotted line of text that needs stuffing\n';
    const body = Buffer.from(line.repeat(10_000));
    const blocks = [...dataBlocks(body)];
    assert.ok(blocks.length > 1);
    assert.ok(blocks.every((b) => b.length <= 64 * 1024));
    assert.deepEqual(Buffer.concat(blocks), Buffer.concat([...dataPieces(body)]));
  });
});

// ------------------------------------------------------------------------------------------
// Sessions over real sockets

describe('transactions', () => {
  it('pipelines MAIL, every RCPT and DATA in one write; one 550 among three', async () => {
    const script: Script = {
      command: (verb, line) =>
        verb === 'RCPT' && line.includes('<b@') ? '550 5.1.1 <b@d.test>: user unknown' : undefined,
    };
    await withSession(script, async (s, srv) => {
      const r = await s.send({ from: 'bounce@src.test', recipients: THREE }, BODY);
      assert.deepEqual(replies(r), [
        '250 2.0.0 Ok: queued as T1',
        '550 5.1.1 <b@d.test>: user unknown',
        '250 2.0.0 Ok: queued as T1',
      ]);
      assert.deepEqual(r.rcptReplies.map(formatReply), [
        '250 2.1.5 Ok',
        '550 5.1.1 <b@d.test>: user unknown',
        '250 2.1.5 Ok',
      ]);
      assert.equal(fmt(r.mail), '250 2.1.0 Ok');
      assert.equal(fmt(r.data), '250 2.0.0 Ok: queued as T1');
      assert.equal(r.failure, undefined);
      const lines = srv.conns[0]?.lines ?? [];
      const envelope = lines.filter((l) => /^(MAIL|RCPT|DATA)/.test(l.line));
      assert.equal(envelope.length, 5);
      assert.equal(new Set(envelope.map((l) => l.chunk)).size, 1, 'one chunk for the envelope');
      assert.deepEqual(srv.messages[0]?.content, BODY);
      assert.equal(s.usable, true);
      assert.equal(s.transactions, 1);
    });
  });

  it('all RCPT rejected (pipelined): no body, still usable, RSET before the next', async () => {
    let reject = true;
    const script: Script = {
      command: (verb) => (verb === 'RCPT' && reject ? '550 5.1.1 user unknown' : undefined),
    };
    await withSession(script, async (s, srv) => {
      const first = await s.send({ from: 'f@src.test', recipients: THREE }, BODY);
      assert.deepEqual(replies(first), Array(3).fill('550 5.1.1 user unknown'));
      assert.equal(first.data, undefined);
      assert.equal(first.failure, undefined);
      assert.equal(srv.messages.length, 0);
      assert.equal(s.usable, true);
      reject = false;
      const second = await s.send({ from: 'f@src.test', recipients: ['a@d.test'] }, BODY);
      assert.deepEqual(replies(second), ['250 2.0.0 Ok: queued as T1']);
      assert.deepEqual(srv.verbs(), [
        'EHLO',
        'MAIL',
        'RCPT',
        'RCPT',
        'RCPT',
        'DATA',
        'RSET',
        'MAIL',
        'RCPT',
        'DATA',
      ]);
      assert.equal(srv.messages.length, 1);
    });
  });

  it('all RCPT rejected (lock-step): DATA is never sent', async () => {
    const script: Script = {
      extensions: ['8BITMIME'],
      command: (verb) => (verb === 'RCPT' ? '450 4.2.0 mailbox busy' : undefined),
    };
    await withSession(script, async (s, srv) => {
      const r = await s.send({ from: 'f@src.test', recipients: ['a@d.test', 'b@d.test'] }, BODY);
      assert.deepEqual(replies(r), Array(2).fill('450 4.2.0 mailbox busy'));
      assert.deepEqual(srv.verbs(), ['EHLO', 'MAIL', 'RCPT', 'RCPT']);
      const chunks = srv.conns[0]?.lines.map((l) => l.chunk) ?? [];
      assert.equal(new Set(chunks).size, chunks.length, 'lock-step: one command per chunk');
      assert.equal(s.usable, true);
    });
  });

  it('354 although every RCPT failed: only the terminating dot goes, never the body', async () => {
    const script: Script = {
      command: (verb) => {
        if (verb === 'RCPT') return '550 5.1.1 user unknown';
        return verb === 'DATA' ? '354 go ahead anyway' : undefined;
      },
    };
    await withSession(script, async (s, srv) => {
      const r = await s.send({ from: 'f@src.test', recipients: ['a@d.test'] }, BODY);
      assert.deepEqual(replies(r), ['550 5.1.1 user unknown']);
      assert.equal(srv.messages[0]?.wire.toString(), '.\r\n');
      assert.equal(s.usable, true);
    });
  });

  it('MAIL rejected: every recipient carries the MAIL reply', async () => {
    const script: Script = {
      command: (verb) => (verb === 'MAIL' ? '553 5.7.1 sender rejected' : undefined),
    };
    await withSession(script, async (s) => {
      const r = await s.send({ from: 'f@src.test', recipients: THREE }, BODY);
      assert.deepEqual(replies(r), Array(3).fill('553 5.7.1 sender rejected'));
      assert.equal(r.rcptReplies.length, 3, 'the pipelined 503s were read');
      assert.equal(s.usable, true);
    });
  });

  it('a 5xx at the final dot reaches every accepted recipient', async () => {
    const script: Script = { afterDot: () => '554 5.7.1 message refused: spam' };
    await withSession(script, async (s) => {
      const r = await s.send({ from: 'f@src.test', recipients: ['a@d.test', 'b@d.test'] }, BODY);
      assert.deepEqual(replies(r), Array(2).fill('554 5.7.1 message refused: spam'));
      assert.equal(
        r.rcptReplies.every((x) => x.code === 250),
        true,
      );
      assert.equal(s.usable, true);
    });
  });

  it('keeps multi-line replies whole across split TCP chunks', async () => {
    const script: Script = {
      greeting: { pieces: ['220-mx.test first ', 'line\r\n220 second line\r', '\n'] },
      ehlo: {
        pieces: ['250-mx.test gre', 'ets you\r\n250-PIPE', 'LINING\r\n250 8BITMIME\r', '\n'],
      },
      command: (verb) =>
        verb === 'RCPT'
          ? { pieces: ['250-2.1.5 first', ' part\r\n250 2.1.5 ', 'second part\r\n'] }
          : undefined,
    };
    await withSession(script, async (s) => {
      assert.equal(s.greeting.text, 'mx.test first line\nsecond line');
      assert.deepEqual([...s.extensions.keys()], ['PIPELINING', '8BITMIME']);
      const r = await s.send({ from: 'f@src.test', recipients: ['a@d.test'] }, BODY);
      assert.equal(r.rcptReplies[0]?.text, 'first part\nsecond part');
      assert.equal(r.rcptReplies[0]?.enhanced, '2.1.5');
      assert.deepEqual(replies(r), ['250 2.0.0 Ok: queued as T1']);
    });
  });

  it('round-trips dot-stuffing and never puts bare CR/LF on the wire', async () => {
    const bodies = [
      '.starts with a dot\r\nline\r\n',
      'a\r\n.\r\nb\r\n',
      'smuggle\n.\nMAIL FROM:<evil@x>\r\n',
      'smuggle\r.\r\nRCPT TO:<evil@x>\r\n',
      'smuggle\n.\r\nDATA\r\n',
      'no final line end',
      '',
    ];
    await withSession({}, async (s, srv) => {
      for (const text of bodies) {
        const r = await s.send({ from: 'f@src.test', recipients: ['a@d.test'] }, Buffer.from(text));
        assert.deepEqual(replies(r), ['250 2.0.0 Ok: queued as T1'], JSON.stringify(text));
      }
      assert.equal(srv.messages.length, bodies.length, 'no smuggled extra transaction');
      srv.messages.forEach((m, i) => {
        assert.equal(m.wire.toString('latin1'), referenceData(bodies[i] ?? ''));
        assert.doesNotMatch(m.wire.toString('latin1'), /\r(?!\n)|(?<!\r)\n/);
      });
      assert.equal(srv.messages[0]?.content.toString(), '.starts with a dot\r\nline\r\n');
      assert.deepEqual(srv.verbs().filter((v) => v === 'MAIL').length, bodies.length);
    });
  });

  it('adds SIZE and BODY=8BITMIME and SMTPUTF8 when offered and needed', async () => {
    await withSession({}, async (s, srv) => {
      const body = Buffer.from('Subject: caf\u00e9\r\n\r\n8-bit body \u00e9\r\n');
      await s.send({ from: 'f@src.test', recipients: ['j\u00f6rg@d.test'] }, body);
      const mail = srv.conns[0]?.lines.find((l) => l.line.startsWith('MAIL'))?.line;
      assert.equal(mail, `MAIL FROM:<f@src.test> SIZE=${body.length} BODY=8BITMIME SMTPUTF8`);
    });
  });

  it('refuses locally what cannot go: SMTPUTF8, SIZE, control characters', async () => {
    await withSession({ extensions: ['PIPELINING', 'SIZE 100'] }, async (s, srv) => {
      const utf8 = await s.send(
        { from: 'f@src.test', recipients: ['a@d.test'], smtputf8: true },
        BODY,
      );
      assert.deepEqual(replies(utf8), [
        '553 5.6.7 SMTPUTF8 is required but the server does not offer it',
      ]);
      const big = await s.send(
        { from: 'f@src.test', recipients: ['a@d.test'] },
        Buffer.alloc(200, 0x61),
      );
      assert.equal(big.recipients[0]?.reply.enhanced, '5.3.4');
      assert.deepEqual(srv.verbs(), ['EHLO'], 'nothing was sent');
      const bad = await s.send(
        { from: 'f@src.test', recipients: ['x@d.test\r\nRSET', 'a@d.test'] },
        BODY,
      );
      assert.deepEqual(
        bad.recipients.map((r) => r.reply.code),
        [501, 250],
      );
      assert.deepEqual(srv.verbs(), ['EHLO', 'MAIL', 'RCPT', 'DATA']);
    });
  });
});

describe('421 and lost connections', () => {
  it('421 to the second RCPT: every recipient carries it, the session is unusable', async () => {
    const script: Script = {
      command: (verb, line) =>
        verb === 'RCPT' && line.includes('<b@')
          ? { reply: '421 4.7.0 mx.test too many errors, closing', close: true }
          : undefined,
    };
    await withSession(script, async (s) => {
      const r = await s.send({ from: 'f@src.test', recipients: THREE }, BODY);
      assert.deepEqual(replies(r), Array(3).fill('421 4.7.0 mx.test too many errors, closing'));
      assert.equal(r.failure, undefined);
      assert.equal(s.usable, false);
    });
  });

  it('421 to MAIL in lock-step', async () => {
    const script: Script = {
      extensions: [],
      command: (verb) =>
        verb === 'MAIL' ? { reply: '421 4.3.2 shutting down', close: true } : undefined,
    };
    await withSession(script, async (s, srv) => {
      const r = await s.send({ from: 'f@src.test', recipients: THREE }, BODY);
      assert.deepEqual(replies(r), Array(3).fill('421 4.3.2 shutting down'));
      assert.deepEqual(srv.verbs(), ['EHLO', 'MAIL']);
      assert.equal(s.usable, false);
    });
  });

  it('an unsolicited 421 between transactions ends the session', async () => {
    const script: Script = {
      afterDot: () => ({ reply: '250 2.0.0 Ok\n421 4.4.2 idle timeout', close: true }),
    };
    await withSession(script, async (s) => {
      await s.send({ from: 'f@src.test', recipients: ['a@d.test'] }, BODY);
      await delay(50);
      const r = await s.send({ from: 'f@src.test', recipients: ['a@d.test'] }, BODY);
      assert.deepEqual(replies(r), ['421 4.4.2 idle timeout']);
      assert.equal(s.usable, false);
    });
  });

  it('connection dropped mid-DATA: failure at body or dot, 4xx per recipient', async () => {
    await withSession({ dropAfterDataBytes: 100_000 }, async (s) => {
      const body = Buffer.from('x'.repeat(998) + '\r\n').subarray(0, 1000);
      const big = Buffer.concat(Array(2_000).fill(body));
      const r = await s.send({ from: 'f@src.test', recipients: ['a@d.test', 'b@d.test'] }, big);
      assert.ok(r.failure, 'a failure is reported');
      assert.ok(['body', 'dot'].includes(r.failure.stage), `stage ${r.failure.stage}`);
      for (const x of r.recipients) {
        assert.equal(x.reply.code, 451);
        assert.equal(x.reply.enhanced, '4.4.2');
      }
      assert.equal(s.usable, false);
      const again = await s.send({ from: 'f@src.test', recipients: ['a@d.test'] }, BODY);
      assert.equal(again.failure?.stage, 'mail');
      assert.equal(again.recipients[0]?.reply.code, 451);
    });
  });
});

describe('timeouts', () => {
  const stall = { stall: true } as const;
  const transactionCases: { stage: string; script: Script; reply: string }[] = [
    {
      stage: 'mail',
      script: { command: (v) => (v === 'MAIL' ? stall : undefined) },
      reply: '451 4.4.7 timeout waiting for reply to MAIL FROM',
    },
    {
      stage: 'rcpt',
      script: { command: (v) => (v === 'RCPT' ? stall : undefined) },
      reply: '451 4.4.7 timeout waiting for reply to RCPT TO',
    },
    {
      stage: 'data',
      script: { command: (v) => (v === 'DATA' ? stall : undefined) },
      reply: '451 4.4.7 timeout waiting for reply to DATA',
    },
    {
      stage: 'dot',
      script: { afterDot: () => stall },
      reply: '451 4.4.7 timeout waiting for reply to final dot',
    },
  ];
  for (const c of transactionCases) {
    it(`stall at ${c.stage}: timeout failure at that stage`, async () => {
      await withSession(
        c.script,
        async (s) => {
          const started = Date.now();
          const r = await s.send({ from: 'f@src.test', recipients: ['a@d.test'] }, BODY);
          assert.deepEqual(r.failure && { stage: r.failure.stage, kind: r.failure.kind }, {
            stage: c.stage,
            kind: 'timeout',
          });
          assert.deepEqual(replies(r), [c.reply]);
          assert.ok(Date.now() - started < 2_000, 'bounded by the short timeout');
          assert.equal(s.usable, false);
        },
        { timeouts: timeouts(2_000, { mail: 150, rcpt: 150, dataInit: 150, dataDone: 150 }) },
      );
    });
  }

  it('a server that stops reading the body: timeout at body (dataBlock)', async () => {
    await withSession(
      { pauseInData: true, extensions: ['PIPELINING'] },
      async (s) => {
        const big = Buffer.alloc(48 * 1024 * 1024, 0x61);
        const r = await s.send({ from: 'f@src.test', recipients: ['a@d.test'] }, big);
        assert.deepEqual(r.failure && [r.failure.stage, r.failure.kind], ['body', 'timeout']);
        assert.deepEqual(replies(r), ['451 4.4.7 timeout sending message body']);
      },
      { timeouts: timeouts(2_000, { dataBlock: 300 }) },
    );
  });

  const openCases: { stage: string; script: Script; over: Partial<ClientTimeouts> }[] = [
    { stage: 'greeting', script: { greeting: stall }, over: { greeting: 150 } },
    { stage: 'ehlo', script: { ehlo: stall }, over: { ehlo: 150 } },
  ];
  for (const c of openCases) {
    it(`stall at ${c.stage}: OpenFailure with 421 4.4.2`, async () => {
      const srv = await ScriptedServer.start(c.script);
      try {
        const r = await openSession(options(srv.port, { timeouts: timeouts(2_000, c.over) }));
        assert.equal(r.ok, false);
        if (r.ok) return;
        assert.equal(r.stage, c.stage);
        assert.equal(r.reply.code, 421);
        assert.equal(r.reply.enhanced, '4.4.2');
        assert.match(r.reply.text, /^timeout /);
      } finally {
        await srv.stop();
      }
    });
  }

  it('an abort signal ends a stalled transaction at once', async () => {
    const ac = new AbortController();
    await withSession(
      { command: (v) => (v === 'RCPT' ? { stall: true } : undefined) },
      async (s) => {
        setTimeout(() => ac.abort(), 50);
        const r = await s.send({ from: 'f@src.test', recipients: ['a@d.test'] }, BODY);
        assert.deepEqual(r.failure && [r.failure.stage, r.failure.kind], ['rcpt', 'error']);
        assert.equal(r.recipients[0]?.reply.enhanced, '4.3.0');
      },
      { signal: ac.signal },
    );
  });
});

describe('opening', () => {
  it('connect refused: OpenFailure at connect with 421 4.4.1', async () => {
    const probe = net.createServer().listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = (probe.address() as net.AddressInfo).port;
    probe.close();
    await once(probe, 'close');
    const r = await openSession(options(port));
    assert.deepEqual(r.ok ? 'opened' : [r.stage, r.reply.code, r.reply.enhanced], [
      'connect',
      421,
      '4.4.1',
    ]);
  });

  it('a 554 greeting fails the open with that reply, and the client says QUIT', async () => {
    const srv = await ScriptedServer.start({ greeting: '554 5.7.1 no service for you' });
    try {
      const r = await openSession(options(srv.port));
      assert.deepEqual(r.ok ? 'opened' : [r.stage, formatReply(r.reply)], [
        'greeting',
        '554 5.7.1 no service for you',
      ]);
      await delay(50);
      assert.deepEqual(srv.verbs(), ['QUIT']);
    } finally {
      await srv.stop();
    }
  });

  it('EHLO rejected with 5xx: falls back to HELO, then works in lock-step', async () => {
    const script: Script = { ehlo: '502 5.5.2 what is EHLO' };
    await withSession(script, async (s, srv) => {
      assert.equal(s.extensions.size, 0);
      const r = await s.send({ from: 'f@src.test', recipients: ['a@d.test', 'b@d.test'] }, BODY);
      assert.deepEqual(replies(r), Array(2).fill('250 2.0.0 Ok: queued as T1'));
      assert.deepEqual(srv.verbs(), ['EHLO', 'HELO', 'MAIL', 'RCPT', 'RCPT', 'DATA']);
    });
  });

  it('EHLO answered 421: OpenFailure at ehlo carrying it', async () => {
    const srv = await ScriptedServer.start({ ehlo: { reply: '421 4.3.2 busy', close: true } });
    try {
      const r = await openSession(options(srv.port));
      assert.deepEqual(r.ok ? 'opened' : [r.stage, formatReply(r.reply)], [
        'ehlo',
        '421 4.3.2 busy',
      ]);
    } finally {
      await srv.stop();
    }
  });

  it('binds the egress source: the server sees 127.0.0.2', async () => {
    await withSession(
      {},
      async (s, srv) => {
        assert.equal(s.localAddress, '127.0.0.2');
        assert.equal(srv.conns[0]?.remoteAddress, '127.0.0.2');
        assert.equal(s.remoteIp, '127.0.0.1');
        assert.equal(s.mxHost, 'mx.test');
      },
      { localAddress: '127.0.0.2' },
    );
  });

  it('close() sends QUIT and ends the session', async () => {
    await withSession({}, async (s, srv) => {
      await s.close();
      assert.equal(s.usable, false);
      assert.deepEqual(srv.verbs(), ['EHLO', 'QUIT']);
      await s.close();
    });
  });
});

describe('STARTTLS', () => {
  it('opportunistic and offered: TLS, EHLO again, mail goes through', async () => {
    await withSession(
      { starttls: 'offer' },
      async (s, srv) => {
        assert.equal(s.tls, true);
        assert.match(s.tlsVersion ?? '', /^TLSv1\.[23]$/);
        assert.equal(s.extensions.has('STARTTLS'), false, 'post-TLS EHLO replaced the old list');
        assert.equal(s.extensions.has('PIPELINING'), true);
        const r = await s.send({ from: 'f@src.test', recipients: THREE }, BODY);
        assert.deepEqual(replies(r), Array(3).fill('250 2.0.0 Ok: queued as T1'));
        assert.deepEqual(srv.verbs().slice(0, 3), ['EHLO', 'STARTTLS', 'EHLO']);
        assert.equal(srv.conns[0]?.tls, true);
        assert.equal(s.localAddress, '127.0.0.1');
      },
      { tls: 'opportunistic' },
    );
  });

  it('opportunistic and not offered: plaintext', async () => {
    await withSession({}, async (s) => assert.equal(s.tls, false), { tls: 'opportunistic' });
  });

  it('opportunistic and refused with 454: plaintext', async () => {
    await withSession({ starttls: 'refuse' }, async (s) => assert.equal(s.tls, false), {
      tls: 'opportunistic',
    });
  });

  const failures: { name: string; script: Script; tls: SessionOptions['tls']; want: RegExp }[] = [
    {
      name: 'required, not offered',
      script: {},
      tls: 'required',
      want: /^421 4\.7\.4 TLS is required/,
    },
    { name: 'required, refused', script: { starttls: 'refuse' }, tls: 'required', want: /^454 / },
    {
      name: 'opportunistic, handshake fails',
      script: { starttls: 'garbage' },
      tls: 'opportunistic',
      want: /^421 4\.4\.2 connection (error|lost) during STARTTLS/,
    },
    {
      name: 'opportunistic, reply injected after the 220',
      script: { starttls: 'inject' },
      tls: 'opportunistic',
      want: /^421 4\.5\.0 protocol error during STARTTLS .*data after STARTTLS reply/,
    },
  ];
  for (const c of failures) {
    it(`${c.name}: OpenFailure at starttls`, async () => {
      const srv = await ScriptedServer.start(c.script);
      try {
        const r = await openSession(options(srv.port, { tls: c.tls }));
        assert.equal(r.ok, false);
        if (r.ok) return;
        assert.equal(r.stage, 'starttls');
        assert.match(formatReply(r.reply), c.want);
      } finally {
        await srv.stop();
      }
    });
  }
});

describe('interop with smtp-server (a peer we did not write)', () => {
  let server: SMTPServer;
  let port = 0;
  const received: { data: Buffer; rcpts: string[]; secure: boolean }[] = [];

  before(async () => {
    const pems = await generate([{ name: 'commonName', value: 'mx.test' }], { keyType: 'ec' });
    server = new SMTPServer({
      key: pems.private,
      cert: pems.cert,
      authOptional: true,
      disableReverseLookup: true,
      logger: false,
      onRcptTo(address, _session, cb) {
        if (address.address.startsWith('nobody@')) {
          const err = Object.assign(new Error('5.1.1 no such user'), { responseCode: 550 });
          return cb(err);
        }
        cb();
      },
      onData(stream, session, cb) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const rcpts = session.envelope.rcptTo.map((r) => r.address);
          received.push({ data: Buffer.concat(chunks), rcpts, secure: session.secure });
          cb();
        });
      },
    });
    server.on('error', () => undefined);
    server.listen(0, '127.0.0.1');
    await once(server.server, 'listening');
    port = (server.server.address() as net.AddressInfo).port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('delivers over STARTTLS with pipelining; dot-stuffed bodies come back intact', async () => {
    const opened = await openSession(options(port, { tls: 'opportunistic' }));
    assert.ok(opened.ok, opened.ok ? '' : formatReply(opened.reply));
    const s = opened.session;
    try {
      assert.equal(s.tls, true);
      assert.equal(s.extensions.has('PIPELINING'), true);
      const body = Buffer.from('Subject: x\r\n\r\n.leading dot\r\n.\r\n..two\r\nend\r\n');
      const r = await s.send(
        { from: 'f@src.test', recipients: ['a@d.test', 'nobody@d.test'] },
        body,
      );
      assert.deepEqual(
        r.recipients.map((x) => x.reply.code),
        [250, 550],
      );
      assert.equal(received.at(-1)?.data.toString(), body.toString());
      assert.deepEqual(received.at(-1)?.rcpts, ['a@d.test']);
      const again = await s.send({ from: 'f@src.test', recipients: ['b@d.test'] }, body);
      assert.equal(again.recipients[0]?.reply.code, 250);
    } finally {
      await s.close();
    }
  });
});
