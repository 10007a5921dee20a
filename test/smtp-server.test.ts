// The SMTP intake server over real sockets: a raw client talks to it and the hooks record what
// the engine would have seen.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { before, test } from 'node:test';
import type { TestContext } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { DataReader } from '../src/intake/smtp-data.js';
import { InputBuffer, LINE_TOO_LONG } from '../src/intake/smtp-input.js';
import { IntakeServer } from '../src/intake/smtp-server.js';
import type {
  ClientInfo,
  IntakeHooks,
  IntakeReply,
  IntakeServerOptions,
  MailTransaction,
} from '../src/intake/smtp-server.js';

// How long a test waits for any one reply (milliseconds): far above loopback latency, short
// enough that a missing reply fails the test instead of hanging it.
const REPLY_WAIT_MS = 3000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const b64 = (s: string): string => Buffer.from(s).toString('base64');

let pems: { private: string; cert: string };

before(async () => {
  const selfsigned = await import('selfsigned');
  pems = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
    keySize: 2048,
  });
});

/** A raw SMTP client: writes bytes, reads whole replies (multi-line ones as one string). */
class RawClient {
  private buffer = '';
  private ended = false;
  private wake: (() => void) | undefined;

  private constructor(private socket: Socket) {
    this.listen(socket);
  }

  /** Connects; the greeting is left unread. */
  static async open(port: number): Promise<RawClient> {
    const socket = connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    await once(socket, 'connect');
    return new RawClient(socket);
  }

  /** Sends text or bytes as they are. */
  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** The next complete reply, e.g. "250-a\r\n250 b\r\n"; fails after REPLY_WAIT_MS. */
  async reply(): Promise<string> {
    const deadline = Date.now() + REPLY_WAIT_MS;
    for (;;) {
      const r = this.takeReply();
      if (r !== undefined) return r;
      if (this.ended) throw new Error(`closed while waiting for a reply; got ${this.buffer}`);
      await this.nextEvent(deadline);
    }
  }

  /** The next n replies. */
  async replies(n: number): Promise<string[]> {
    const all: string[] = [];
    for (let i = 0; i < n; i++) all.push(await this.reply());
    return all;
  }

  /** Sends one command and returns its reply. */
  async command(line: string): Promise<string> {
    this.write(`${line}\r\n`);
    return this.reply();
  }

  /** Resolves once the server closed the connection; fails after REPLY_WAIT_MS. */
  async closed(): Promise<void> {
    const deadline = Date.now() + REPLY_WAIT_MS;
    while (!this.ended) await this.nextEvent(deadline);
  }

  /** Bytes received and not yet taken as replies. */
  get unread(): string {
    return this.buffer;
  }

  /** Performs the TLS handshake on this connection (after the 220 to STARTTLS). */
  async startTls(): Promise<void> {
    this.socket.removeAllListeners('data');
    const secure = tlsConnect({ socket: this.socket, rejectUnauthorized: false });
    await once(secure, 'secureConnect');
    this.socket = secure;
    this.listen(secure);
  }

  /** Drops the connection. */
  destroy(): void {
    this.socket.destroy();
  }

  /** Drops the connection with a TCP RST, as a crashed peer or a middlebox would. */
  reset(): void {
    this.socket.resetAndDestroy();
  }

  private listen(socket: Socket): void {
    socket.on('data', (d: Buffer) => {
      this.buffer += d.toString('utf8');
      this.wake?.();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.ended = true;
      this.wake?.();
    });
  }

  /** Takes one complete reply off the buffer: lines up to one whose 4th character is a space. */
  private takeReply(): string | undefined {
    let start = 0;
    for (;;) {
      const eol = this.buffer.indexOf('\r\n', start);
      if (eol < 0) return undefined;
      if (this.buffer[start + 3] !== '-') {
        const r = this.buffer.slice(0, eol + 2);
        this.buffer = this.buffer.slice(eol + 2);
        return r;
      }
      start = eol + 2;
    }
  }

  /** Waits for data or close, or fails at the deadline. */
  private async nextEvent(deadline: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        this.wake = resolve;
        const left = deadline - Date.now();
        timer = setTimeout(() => reject(new Error(`timed out; unread: ${this.buffer}`)), left);
      });
    } finally {
      clearTimeout(timer);
      this.wake = undefined;
    }
  }
}

/** What the hooks saw during a test. */
interface Seen {
  messages: { client: ClientInfo; txn: MailTransaction; data: string }[];
  senders: string[];
  rejects: { stage: string; reply: IntakeReply }[];
  warnings: string[];
}

type Overrides = Partial<Omit<IntakeServerOptions, 'hooks'>> & { hooks?: Partial<IntakeHooks> };

/** A listening server with recording hooks, closed (with its clients) when the test ends. */
async function setup(t: TestContext, overrides: Overrides = {}) {
  const seen: Seen = { messages: [], senders: [], rejects: [], warnings: [] };
  const hooks: IntakeHooks = {
    onMailFrom: (_c, address) => void seen.senders.push(address),
    onRcptTo: () => undefined,
    onMessage: async (client, txn, data) => {
      seen.messages.push({ client: { ...client }, txn, data: data.toString('utf8') });
      return { code: 250, enhanced: '2.0.0', text: 'Queued' };
    },
    onReject: (_c, stage, reply) => void seen.rejects.push({ stage, reply }),
    ...overrides.hooks,
  };
  const server = new IntakeServer({
    hostname: 'mx.test',
    maxMessageSize: 10_000,
    maxRecipients: 5,
    maxClients: 10,
    authMethods: ['PLAIN', 'LOGIN'],
    allowInsecureAuth: false,
    idleTimeoutMs: 5000,
    log: { debug: () => undefined, warn: (_o, msg) => void seen.warnings.push(msg) },
    ...overrides,
    hooks,
  });
  const { port } = await server.listen('127.0.0.1', 0);
  const clients: RawClient[] = [];
  t.after(async () => {
    for (const c of clients) c.destroy();
    await server.close(0);
  });
  const open = async (): Promise<RawClient> => {
    const c = await RawClient.open(port);
    clients.push(c);
    return c;
  };
  /** A client past the greeting and EHLO. */
  const ready = async (): Promise<RawClient> => {
    const c = await open();
    await c.reply();
    assert.match(await c.command('EHLO client.test'), /^250 /m);
    return c;
  };
  return { server, port, seen, open, ready };
}

/** Sends MAIL, RCPT, DATA and a body (ending CRLF.CRLF is added); returns the final reply. */
async function sendMessage(c: RawClient, body: string): Promise<string> {
  c.write('MAIL FROM:<sender@a.test>\r\nRCPT TO:<rcpt@b.test>\r\nDATA\r\n');
  const [mail, rcpt, data] = await c.replies(3);
  assert.equal(mail, '250 2.1.0 Ok\r\n');
  assert.equal(rcpt, '250 2.1.5 Ok\r\n');
  assert.match(data ?? '', /^354 /);
  c.write(`${body}\r\n.\r\n`);
  return c.reply();
}

test('the greeting arrives at once', async (t) => {
  const { open } = await setup(t);
  const started = performance.now();
  const c = await open();
  assert.equal(await c.reply(), '220 mx.test ESMTP\r\n');
  assert.ok(performance.now() - started < 50, 'greeting took 50 ms or more');
});

test('onConnect can refuse a client: its reply is the greeting, then close', async (t) => {
  const { open, seen } = await setup(t, {
    hooks: { onConnect: () => ({ code: 554, enhanced: '5.7.1', text: 'mx.test Go away' }) },
  });
  const c = await open();
  assert.equal(await c.reply(), '554 5.7.1 mx.test Go away\r\n');
  await c.closed();
  assert.deepEqual(seen.rejects, []);
});

test('EHLO lists the extensions usable now; HELO lists none', async (t) => {
  const cases: { name: string; overrides: Overrides; want: string[]; absent: string[] }[] = [
    {
      name: 'plain, no TLS, insecure auth refused',
      overrides: { hooks: { onAuth: () => true } },
      want: ['PIPELINING', 'SIZE 10000', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES'],
      absent: ['STARTTLS', 'AUTH PLAIN LOGIN', 'CHUNKING'],
    },
    {
      name: 'TLS configured',
      overrides: { tls: { key: pems.private, cert: pems.cert }, hooks: { onAuth: () => true } },
      want: ['STARTTLS'],
      absent: ['AUTH PLAIN LOGIN'],
    },
    {
      name: 'insecure auth allowed',
      overrides: { allowInsecureAuth: true, hooks: { onAuth: () => true } },
      want: ['AUTH PLAIN LOGIN'],
      absent: ['STARTTLS'],
    },
    {
      name: 'no onAuth hook',
      overrides: { allowInsecureAuth: true },
      want: ['PIPELINING'],
      absent: ['AUTH PLAIN LOGIN'],
    },
  ];
  for (const tc of cases) {
    const { open } = await setup(t, tc.overrides);
    const c = await open();
    await c.reply();
    const ehlo = await c.command('EHLO client.test');
    const keywords = ehlo.split('\r\n').map((l) => l.slice(4));
    assert.match(ehlo, /^250-mx\.test\r\n/, tc.name);
    for (const k of tc.want) assert.ok(keywords.includes(k), `${tc.name}: ${k} missing`);
    for (const k of tc.absent) assert.ok(!keywords.includes(k), `${tc.name}: ${k} present`);
    assert.equal(await c.command('HELO client.test'), '250 mx.test\r\n', tc.name);
  }
});

test('pipelined MAIL, RCPT, RCPT, DATA in one write get their replies in order', async (t) => {
  const { ready, seen } = await setup(t);
  const c = await ready();
  c.write('MAIL FROM:<s@a.test>\r\nRCPT TO:<r1@b.test>\r\nRCPT TO:<r2@b.test>\r\nDATA\r\n');
  assert.deepEqual(await c.replies(4), [
    '250 2.1.0 Ok\r\n',
    '250 2.1.5 Ok\r\n',
    '250 2.1.5 Ok\r\n',
    '354 End data with <CR><LF>.<CR><LF>\r\n',
  ]);
  c.write('Subject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n');
  assert.deepEqual(await c.replies(2), ['250 2.0.0 Queued\r\n', '221 2.0.0 Bye\r\n']);
  await c.closed();
  assert.equal(seen.messages.length, 1);
  assert.deepEqual(seen.messages[0]?.txn.recipients, ['r1@b.test', 'r2@b.test']);
  assert.equal(seen.messages[0]?.data, 'Subject: hi\r\n\r\nbody');
});

test('hook replies go out verbatim, X.0.0 added when they lack an enhanced code', async (t) => {
  const { ready, seen } = await setup(t, {
    hooks: {
      onRcptTo: (_c, address) =>
        address.startsWith('far')
          ? { code: 554, enhanced: '5.7.1', text: 'Relay access denied' }
          : undefined,
      onMailFrom: (_c, address) =>
        address === 'blocked@a.test' ? { code: 550, text: 'Go away' } : undefined,
      onMessage: async () => ({ code: 250, text: 'Queued\nas ABC' }),
    },
  });
  const c = await ready();
  assert.equal(await c.command('MAIL FROM:<blocked@a.test>'), '550 5.0.0 Go away\r\n');
  assert.equal(await c.command('MAIL FROM:<ok@a.test>'), '250 2.1.0 Ok\r\n');
  const denied = await c.command('RCPT TO:<far@away.test>');
  assert.equal(denied, '554 5.7.1 Relay access denied\r\n');
  assert.equal(await c.command('RCPT TO:<near@b.test>'), '250 2.1.5 Ok\r\n');
  assert.match(await c.command('DATA'), /^354 /);
  assert.equal(await c.command('x\r\n.'), '250-2.0.0 Queued\r\n250 2.0.0 as ABC\r\n');
  assert.deepEqual(seen.rejects, [], 'hook replies are not reported to onReject');
});

test('dot-stuffing is undone and only CRLF.CRLF ends the message', async (t) => {
  const cases: { sent: string; got: string }[] = [
    { sent: '..leading', got: '.leading' },
    { sent: 'a\r\n..\r\nb', got: 'a\r\n.\r\nb' },
    { sent: 'a\r\n...b', got: 'a\r\n..b' },
    { sent: 'a\r\n.b', got: 'a\r\n.b' },
    { sent: 'a\r\n\r\nb', got: 'a\r\n\r\nb' },
  ];
  const { ready, seen } = await setup(t);
  const c = await ready();
  for (const tc of cases) {
    assert.equal(await sendMessage(c, tc.sent), '250 2.0.0 Queued\r\n', JSON.stringify(tc.sent));
    assert.equal(seen.messages.at(-1)?.data, tc.got, JSON.stringify(tc.sent));
  }
  // An empty message: the first line is the terminator.
  c.write('MAIL FROM:<s@a.test>\r\nRCPT TO:<r@b.test>\r\nDATA\r\n');
  await c.replies(3);
  assert.equal(await c.command('.'), '250 2.0.0 Queued\r\n');
  assert.equal(seen.messages.at(-1)?.data, '');
});

test('the end of data is found across TCP segments', async (t) => {
  const { ready, seen } = await setup(t);
  const c = await ready();
  c.write('MAIL FROM:<s@a.test>\r\nRCPT TO:<r@b.test>\r\nDATA\r\n');
  await c.replies(3);
  for (const piece of ['hello\r', '\n.', '.x\r\n', '.', '\r', '\n']) {
    c.write(piece);
    await sleep(15);
  }
  assert.equal(await c.reply(), '250 2.0.0 Queued\r\n');
  assert.equal(seen.messages[0]?.data, 'hello\r\n.x');
});

test('SMTP smuggling: bare-LF and bare-CR dots stay inside one message', async (t) => {
  const sequences = ['\n.\n', '\r\n.\n', '\n.\r\n', '\r.\r\n', '\n.\r\r\n'];
  const { ready, seen } = await setup(t);
  const c = await ready();
  for (const seq of sequences) {
    const body = `a${seq}MAIL FROM:<x@y.test>\r\nRCPT TO:<z@w.test>\r\nDATA\r\nsmuggled`;
    const before = seen.messages.length;
    assert.equal(await sendMessage(c, body), '250 2.0.0 Queued\r\n', JSON.stringify(seq));
    assert.equal(await c.command('NOOP'), '250 2.0.0 Ok\r\n', 'no extra replies');
    assert.equal(seen.messages.length, before + 1, `${JSON.stringify(seq)}: one message`);
    assert.equal(seen.messages.at(-1)?.data, body, JSON.stringify(seq));
  }
  assert.ok(!seen.senders.includes('x@y.test'), 'smuggled MAIL FROM ran as a command');
});

test('the size limit holds at MAIL SIZE= and during DATA; the session goes on', async (t) => {
  const { ready, seen } = await setup(t, { maxMessageSize: 100 });
  const c = await ready();
  const tooBig = '552 5.3.4 Message size exceeds fixed maximum message size\r\n';
  assert.equal(await c.command('MAIL FROM:<s@a.test> SIZE=101'), tooBig);
  assert.equal(await c.command('MAIL FROM:<s@a.test> SIZE=100'), '250 2.1.0 Ok\r\n');
  assert.equal(await c.command('RSET'), '250 2.0.0 Ok\r\n');
  assert.equal(await sendMessage(c, 'x'.repeat(5000)), tooBig);
  assert.equal(seen.messages.length, 0);
  assert.deepEqual(
    seen.rejects.map((r) => r.stage),
    ['mail', 'data'],
  );
  assert.equal(await sendMessage(c, 'x'.repeat(100)), '250 2.0.0 Queued\r\n');
  assert.equal(seen.messages[0]?.data.length, 100);
});

test('recipients beyond maxRecipients get 452 4.5.3', async (t) => {
  const { ready, seen } = await setup(t, { maxRecipients: 2 });
  const c = await ready();
  c.write('MAIL FROM:<s@a.test>\r\nRCPT TO:<1@b.test>\r\nRCPT TO:<2@b.test>\r\n');
  c.write('RCPT TO:<3@b.test>\r\nDATA\r\n');
  const replies = await c.replies(5);
  assert.equal(replies[3], '452 4.5.3 Too many recipients\r\n');
  assert.match(replies[4] ?? '', /^354 /);
  assert.equal(await c.command('.'), '250 2.0.0 Queued\r\n');
  assert.deepEqual(seen.messages[0]?.txn.recipients, ['1@b.test', '2@b.test']);
});

test('command errors get their codes and the session goes on', async (t) => {
  const cases: { send: string; want: string }[] = [
    { send: `NOOP ${'x'.repeat(5000)}`, want: '500 5.5.6 Line too long' },
    { send: 'NO\0OP', want: '500 5.5.2 NUL character in command' },
    { send: 'FROB', want: '500 5.5.2 Command unrecognized' },
    { send: 'RCPT TO:<r@b.test>', want: '503 5.5.1 Error: need MAIL command' },
    { send: 'DATA', want: '503 5.5.1 Error: need MAIL command' },
    { send: 'MAIL FROM:<a b@a.test>', want: '501 5.1.7 Bad address syntax' },
    { send: 'MAIL FROM:<s@a.test', want: '501 5.1.7 Missing closing angle bracket' },
    { send: 'MAIL FROM:<s\x01@a.test>', want: '501 5.1.7 Control character in address' },
    { send: `MAIL FROM:<${'l'.repeat(65)}@a.test>`, want: '501 5.1.7 Bad local part length' },
    { send: 'MAIL TO:<s@a.test>', want: '501 5.5.4 Syntax: FROM:<address>' },
    { send: 'MAIL FROM:<s@a.test> FOO=1', want: '555 5.5.4 Unsupported parameter FOO' },
    { send: 'MAIL FROM:<s@a.test> BODY=BINARY', want: '501 5.5.4 Bad BODY value' },
    { send: 'MAIL FROM:<ü@a.test>', want: '553 5.6.7 Non-ASCII address needs SMTPUTF8' },
    {
      send: 'VRFY someone',
      want: '252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery',
    },
    { send: 'HELP', want: '214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP' },
    { send: 'STARTTLS', want: '502 5.5.1 Error: command not implemented' },
  ];
  const { ready } = await setup(t);
  const c = await ready();
  for (const tc of cases) {
    assert.equal(await c.command(tc.send), `${tc.want}\r\n`, JSON.stringify(tc.send));
    assert.equal(await c.command('NOOP'), '250 2.0.0 Ok\r\n', `after ${JSON.stringify(tc.send)}`);
  }
});

test('MAIL and RCPT take the common forms and check order', async (t) => {
  const cases: { send: string; want: string }[] = [
    { send: 'RCPT TO:<r@b.test>', want: '503 5.5.1 Error: need MAIL command' },
    { send: 'mail from: <s@a.test> SIZE=10 BODY=8BITMIME', want: '250 2.1.0 Ok' },
    { send: 'MAIL FROM:<other@a.test>', want: '503 5.5.1 Error: nested MAIL command' },
    { send: 'rcpt to:<postmaster>', want: '250 2.1.5 Ok' },
    { send: 'RCPT TO:<nodomain>', want: '501 5.1.3 Address lacks a domain' },
    { send: 'RCPT TO:r@b.test', want: '250 2.1.5 Ok' },
    { send: 'RCPT TO:<@relay.test:r2@b.test>', want: '250 2.1.5 Ok' },
    { send: 'RCPT TO:<"john doe"@b.test>', want: '250 2.1.5 Ok' },
    { send: `RCPT TO:<r@${'d'.repeat(250)}.test>`, want: '501 5.1.3 Address too long' },
    { send: 'RCPT TO:<r@b.test> NOTIFY=NEVER', want: '555 5.5.4 Unsupported parameter NOTIFY' },
    { send: 'RSET', want: '250 2.0.0 Ok' },
    { send: 'MAIL FROM:<>', want: '250 2.1.0 Ok' },
  ];
  const { open, seen } = await setup(t);
  const c = await open();
  await c.reply();
  assert.equal(
    await c.command('MAIL FROM:<s@a.test>'),
    '503 5.5.1 Error: send HELO/EHLO first\r\n',
  );
  assert.match(await c.command('EHLO client.test'), /^250 /m);
  for (const tc of cases) {
    assert.equal(await c.command(tc.send), `${tc.want}\r\n`, JSON.stringify(tc.send));
  }
  assert.deepEqual(seen.senders, ['s@a.test', '']);
});

test('bare LF ends a command line', async (t) => {
  const { open } = await setup(t);
  const c = await open();
  await c.reply();
  c.write('HELO client.test\nNOOP\n');
  assert.deepEqual(await c.replies(2), ['250 mx.test\r\n', '250 2.0.0 Ok\r\n']);
});

test('AUTH PLAIN and LOGIN succeed and fail as RFC 4954 says', async (t) => {
  const plain = (user: string, pass: string): string => b64(`\0${user}\0${pass}`);
  const cases: { name: string; lines: string[]; want: string[]; user?: string }[] = [
    {
      name: 'PLAIN with initial response',
      lines: [`AUTH PLAIN ${plain('ann', 'secret')}`],
      want: ['235 2.7.0 Authentication successful'],
      user: 'ann',
    },
    {
      name: 'PLAIN after a 334 challenge',
      lines: ['AUTH PLAIN', plain('ann', 'secret')],
      want: ['334 ', '235 2.7.0 Authentication successful'],
      user: 'ann',
    },
    {
      name: 'LOGIN in two steps',
      lines: ['AUTH LOGIN', b64('ann'), b64('secret')],
      want: ['334 VXNlcm5hbWU6', '334 UGFzc3dvcmQ6', '235 2.7.0 Authentication successful'],
      user: 'ann',
    },
    {
      name: 'PLAIN with a wrong password',
      lines: [`AUTH PLAIN ${plain('ann', 'guess')}`],
      want: ['535 5.7.8 Authentication credentials invalid'],
    },
    {
      name: 'LOGIN cancelled',
      lines: ['AUTH LOGIN', '*'],
      want: ['334 VXNlcm5hbWU6', '501 5.0.0 Authentication cancelled'],
    },
    {
      name: 'bad base64',
      lines: ['AUTH PLAIN !!!!'],
      want: ['501 5.5.2 Cannot decode response'],
    },
    {
      name: 'unknown mechanism',
      lines: ['AUTH CRAM-MD5'],
      want: ['504 5.5.4 Unrecognized authentication type'],
    },
  ];
  const { ready, seen } = await setup(t, {
    allowInsecureAuth: true,
    hooks: { onAuth: (_c, user, pass) => user === 'ann' && pass === 'secret' },
  });
  for (const tc of cases) {
    const c = await ready();
    for (const [i, line] of tc.lines.entries()) {
      assert.equal(await c.command(line), `${tc.want[i]}\r\n`, `${tc.name}, step ${i}`);
    }
    c.write('MAIL FROM:<s@a.test>\r\nRCPT TO:<r@b.test>\r\nDATA\r\n');
    await c.replies(3);
    await c.command('.');
    assert.equal(seen.messages.at(-1)?.client.user, tc.user, tc.name);
    c.destroy();
  }
});

test('AUTH out of order is 503 5.5.1; without TLS it is refused and not offered', async (t) => {
  const auth = `AUTH PLAIN ${b64('\0ann\0secret')}`;
  const insecure = await setup(t, {
    allowInsecureAuth: true,
    hooks: { onAuth: () => true },
  });
  const c = await insecure.open();
  await c.reply();
  assert.equal(await c.command(auth), '503 5.5.1 Error: send EHLO first\r\n');
  await c.command('EHLO client.test');
  assert.equal(await c.command(auth), '235 2.7.0 Authentication successful\r\n');
  assert.equal(await c.command(auth), '503 5.5.1 Error: already authenticated\r\n');

  const strict = await setup(t, { hooks: { onAuth: () => true } });
  const d = await strict.ready();
  const refused = '538 5.7.11 Encryption required for requested authentication mechanism\r\n';
  assert.equal(await d.command(auth), refused);
  assert.deepEqual(
    strict.seen.rejects.map((r) => r.stage),
    ['auth'],
  );
});

test('STARTTLS upgrades; EHLO then offers AUTH and the message goes through', async (t) => {
  const { open, seen } = await setup(t, {
    tls: { key: pems.private, cert: pems.cert },
    hooks: { onAuth: (_c, user, pass) => user === 'ann' && pass === 'secret' },
  });
  const c = await open();
  await c.reply();
  assert.match(await c.command('EHLO client.test'), /^250[- ]STARTTLS$/m);
  assert.equal(await c.command('STARTTLS'), '220 2.0.0 Ready to start TLS\r\n');
  await c.startTls();
  assert.equal(
    await c.command('MAIL FROM:<s@a.test>'),
    '503 5.5.1 Error: send HELO/EHLO first\r\n',
  );
  const ehlo = await c.command('EHLO client.test');
  assert.doesNotMatch(ehlo, /STARTTLS/);
  assert.match(ehlo, /^250 AUTH PLAIN LOGIN$/m);
  const auth = await c.command(`AUTH PLAIN ${b64('\0ann\0secret')}`);
  assert.equal(auth, '235 2.7.0 Authentication successful\r\n');
  assert.equal(await c.command('STARTTLS'), '503 5.5.1 Error: TLS already active\r\n');
  assert.equal(await sendMessage(c, 'secret mail'), '250 2.0.0 Queued\r\n');
  assert.equal(seen.messages[0]?.client.tls, true);
  assert.equal(seen.messages[0]?.client.user, 'ann');
});

test('plain text pipelined after STARTTLS is discarded', async (t) => {
  const { open, seen } = await setup(t, { tls: { key: pems.private, cert: pems.cert } });
  const c = await open();
  await c.reply();
  await c.command('EHLO client.test');
  c.write('STARTTLS\r\nMAIL FROM:<evil@a.test>\r\nRCPT TO:<victim@b.test>\r\n');
  assert.equal(await c.reply(), '220 2.0.0 Ready to start TLS\r\n');
  await c.startTls();
  assert.match(await c.command('EHLO client.test'), /^250 /m);
  assert.equal(await c.command('RCPT TO:<r@b.test>'), '503 5.5.1 Error: need MAIL command\r\n');
  assert.deepEqual(seen.senders, []);
});

test('garbage instead of a TLS handshake closes that client only', async (t) => {
  const { open, seen } = await setup(t, { tls: { key: pems.private, cert: pems.cert } });
  const c = await open();
  await c.reply();
  await c.command('EHLO client.test');
  assert.equal(await c.command('STARTTLS'), '220 2.0.0 Ready to start TLS\r\n');
  c.write('this is not a ClientHello\r\n'.repeat(20));
  await c.closed();
  assert.ok(seen.warnings.includes('intake TLS handshake failed'), 'no warning logged');
  const d = await open();
  assert.equal(await d.reply(), '220 mx.test ESMTP\r\n');
});

test('an idle client gets 421 4.4.2 and is disconnected', async (t) => {
  const { open, seen, server } = await setup(t, { idleTimeoutMs: 150 });
  const c = await open();
  await c.reply();
  assert.equal(await c.reply(), '421 4.4.2 mx.test Error: timeout exceeded\r\n');
  await c.closed();
  assert.equal(seen.rejects[0]?.stage, 'timeout');
  await sleep(20);
  assert.equal(server.connections, 0);
});

test('a client that vanishes mid-DATA leaves no message', async (t) => {
  const { ready, seen, server } = await setup(t);
  const c = await ready();
  c.write('MAIL FROM:<s@a.test>\r\nRCPT TO:<r@b.test>\r\nDATA\r\n');
  await c.replies(3);
  c.write('Subject: half\r\n\r\nand then');
  await sleep(30);
  c.reset();
  for (let i = 0; i < 50 && server.connections > 0; i++) await sleep(10);
  assert.equal(server.connections, 0);
  assert.equal(seen.messages.length, 0);
});

test('replies wait for onMessage; commands pipelined behind it run after it', async (t) => {
  let release: (() => void) | undefined;
  const { ready, seen } = await setup(t, {
    hooks: {
      onMessage: async (client, txn, data) => {
        await new Promise<void>((r) => (release = r));
        seen.messages.push({ client, txn, data: data.toString() });
        return { code: 250, enhanced: '2.0.0', text: 'Durable' };
      },
    },
  });
  const c = await ready();
  c.write('MAIL FROM:<s@a.test>\r\nRCPT TO:<r@b.test>\r\nDATA\r\n');
  await c.replies(3);
  c.write('body\r\n.\r\nMAIL FROM:<next@a.test>\r\nNOOP\r\n');
  await sleep(60);
  assert.equal(c.unread, '', 'nothing may be written before onMessage resolves');
  assert.deepEqual(seen.senders, ['s@a.test'], 'the next MAIL ran before the reply');
  release?.();
  assert.deepEqual(await c.replies(3), [
    '250 2.0.0 Durable\r\n',
    '250 2.1.0 Ok\r\n',
    '250 2.0.0 Ok\r\n',
  ]);
});

test('a hook that throws costs a 451 4.3.0, not the session', async (t) => {
  const { ready, seen } = await setup(t, {
    hooks: {
      onRcptTo: () => {
        throw new Error('database down');
      },
    },
  });
  const c = await ready();
  assert.equal(await c.command('MAIL FROM:<s@a.test>'), '250 2.1.0 Ok\r\n');
  const failed = await c.command('RCPT TO:<r@b.test>');
  assert.equal(failed, '451 4.3.0 Error: local error in processing\r\n');
  assert.equal(await c.command('NOOP'), '250 2.0.0 Ok\r\n');
  assert.ok(seen.warnings.includes('intake hook failed'));
});

test('clients beyond maxClients get 421 4.7.0 and are closed', async (t) => {
  const { open, server } = await setup(t, { maxClients: 2 });
  const a = await open();
  const b = await open();
  await a.reply();
  await b.reply();
  const c = await open();
  assert.equal(await c.reply(), '421 4.7.0 mx.test Too many connections, try again later\r\n');
  await c.closed();
  assert.equal(server.connections, 2);
  a.destroy();
  for (let i = 0; i < 50 && server.connections > 1; i++) await sleep(10);
  const d = await open();
  assert.equal(await d.reply(), '220 mx.test ESMTP\r\n');
});

test('close() says 421 4.3.2 to idle clients and resolves when they are gone', async (t) => {
  const { ready, server } = await setup(t);
  const c = await ready();
  const closing = server.close(1000);
  assert.equal(await c.reply(), '421 4.3.2 Service shutting down\r\n');
  await c.closed();
  await closing;
  assert.equal(server.connections, 0);
});

/** What DataReader must find in a stream: the content and where the end of data ends. */
function expectedData(stream: string): { content: string; end: number } | undefined {
  const withLead = `\r\n${stream}`;
  const at = withLead.indexOf('\r\n.\r\n');
  if (at < 0) return undefined;
  const stuffed = withLead.slice(0, at);
  const content = stuffed.split('\r\n..').join('\r\n.').slice(2);
  return { content, end: at + 5 - 2 };
}

/** Feeds a stream to a DataReader in pieces cut at the given offsets. */
function readInPieces(
  stream: string,
  cuts: number[],
): { content: string; end: number } | undefined {
  const reader = new DataReader(1_000_000);
  const bytes = Buffer.from(stream, 'latin1');
  const bounds = [0, ...cuts, bytes.length];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const start = bounds[i] ?? 0;
    const end = reader.push(bytes.subarray(start, bounds[i + 1]));
    if (end >= 0) return { content: reader.content().toString('latin1'), end: start + end };
  }
  return undefined;
}

test('DataReader finds the same end and content wherever the input is cut', () => {
  const streams = [
    'hello\r\n.\r\nNOOP\r\n',
    '.\r\nNOOP\r\n',
    '..\r\n.\r\n',
    '..a\r\n..\r\n...\r\n.b\r\n.\r\nQUIT\r\n',
    'a\n.\nb\r\n.\nc\n.\r\nd\r.\r\ne\r\n.\r\r\n.\r\n',
    '\r\n\r\n.\r\n',
    '\r\r\n.\r\n',
    'no end\r\n.',
  ];
  for (const stream of streams) {
    const want = expectedData(stream);
    for (let a = 0; a <= stream.length; a++) {
      for (let b = a; b <= stream.length; b++) {
        const got = readInPieces(stream, [a, b]);
        assert.deepEqual(got, want, `${JSON.stringify(stream)} cut at ${a}, ${b}`);
      }
    }
  }
});

test('DataReader keeps counting but stops keeping past the limit', () => {
  const reader = new DataReader(10);
  assert.equal(reader.push(Buffer.from('0123456789')), -1);
  assert.equal(reader.overflowed, false);
  assert.equal(reader.push(Buffer.from('abc\r\n.\r\nNOOP')), 8);
  assert.equal(reader.overflowed, true);
  assert.equal(reader.size, 13);
  assert.equal(reader.content().length, 0);
});

test('InputBuffer splits lines across chunks and drops over-long ones', () => {
  const cases: { chunks: string[]; want: (string | typeof LINE_TOO_LONG)[] }[] = [
    { chunks: ['EHLO a\r\nNO', 'OP\r\n'], want: ['EHLO a', 'NOOP'] },
    { chunks: ['A\nB\r\n', 'C\r', '\n'], want: ['A', 'B', 'C'] },
    { chunks: ['x'.repeat(20), 'y'.repeat(20), 'zz\r\nNOOP\r\n'], want: [LINE_TOO_LONG, 'NOOP'] },
    { chunks: [`${'x'.repeat(15)}\r\nOK\r\n`], want: [LINE_TOO_LONG, 'OK'] },
    { chunks: [`${'x'.repeat(14)}\r\n`], want: ['x'.repeat(14)] },
  ];
  for (const tc of cases) {
    const input = new InputBuffer();
    const got: (string | typeof LINE_TOO_LONG)[] = [];
    for (const chunk of tc.chunks) {
      input.push(Buffer.from(chunk));
      for (let line = input.takeLine(16); line !== undefined; line = input.takeLine(16)) {
        got.push(line);
      }
    }
    assert.deepEqual(got, tc.want, JSON.stringify(tc.chunks));
    assert.equal(input.size, 0);
  }
});
