// Checks the test world itself: its DNS server, scripted receivers, behaviours and the world.
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import {
  compose,
  blockSources,
  dropMidData,
  greylist,
  rateLimit421,
  rejectAll,
  stallAt,
  tempFailFirst,
  unknownUsers,
} from '../src/testworld/behaviours.js';
import { TestDnsServer, reverseName } from '../src/testworld/dns-server.js';
import { Receiver } from '../src/testworld/receiver.js';
import type { ReceiverOptions, ReceiverScript } from '../src/testworld/receiver.js';
import { DataCollector, formatReply, unstuffDots } from '../src/testworld/smtp-wire.js';
import { TestWorld } from '../src/testworld/world.js';

// Receivers under test listen here: any 127/8 address is local on Linux.
const RECEIVER_HOST = '127.0.9.1';
// A sending (egress) address, as the engine would use one.
const SENDER_IP = '127.0.8.8';
// How long a test waits for a reply or a close before failing (ms); local replies take < 10 ms.
const WAIT_MS = 2000;

// A hung socket must fail its own test, not stall the whole run (ms).
const TEST = { timeout: 5_000 };

/** Options for events.once that give up after WAIT_MS. */
const bounded = () => ({ signal: AbortSignal.timeout(WAIT_MS) });

// ---- A raw SMTP client, to drive receivers exactly byte by byte ----

/** A line-level SMTP client over a raw socket. */
class RawClient {
  private socket: net.Socket;
  private text = '';
  private isClosed = false;
  private wake: (() => void) | undefined;
  private readonly onData = (d: Buffer): void => {
    this.text += d.toString('latin1');
    this.wake?.();
  };

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.listen(socket);
  }

  static async connect(host: string, port: number, localAddress?: string): Promise<RawClient> {
    const socket = net.connect({ host, port, localAddress });
    await once(socket, 'connect', bounded());
    return new RawClient(socket);
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** The next complete reply in wire form, lines joined with "\n". */
  async reply(timeoutMs = WAIT_MS): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = this.takeReply();
      if (r !== undefined) return r;
      if (this.isClosed)
        throw new Error(`closed before a reply; unread ${JSON.stringify(this.text)}`);
      if (Date.now() >= deadline) throw new Error(`no reply within ${timeoutMs} ms`);
      await this.nextEvent(deadline - Date.now());
    }
  }

  /** The next n replies. */
  async replies(n: number): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(await this.reply());
    return out;
  }

  /** Resolves when the server has closed the connection; rejects after timeoutMs. */
  async closed(timeoutMs = WAIT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.isClosed) {
      if (Date.now() >= deadline) throw new Error(`still open after ${timeoutMs} ms`);
      await this.nextEvent(deadline - Date.now());
    }
  }

  /** True when nothing arrives for ms milliseconds. */
  async silentFor(ms: number): Promise<boolean> {
    await this.nextEvent(ms);
    return this.text === '' && !this.isClosed;
  }

  /** Starts TLS on the same socket (after the server's 220 to STARTTLS). */
  async starttls(): Promise<void> {
    this.socket.removeListener('data', this.onData);
    const secure = tls.connect({ socket: this.socket, rejectUnauthorized: false });
    await once(secure, 'secureConnect', bounded());
    this.socket = secure;
    this.listen(secure);
  }

  destroy(): void {
    this.socket.destroy();
  }

  private listen(socket: net.Socket): void {
    socket.on('data', this.onData);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.isClosed = true;
      this.wake?.();
    });
  }

  private takeReply(): string | undefined {
    const lines: string[] = [];
    let pos = 0;
    for (;;) {
      const eol = this.text.indexOf('\r\n', pos);
      if (eol < 0) return undefined;
      const line = this.text.slice(pos, eol);
      lines.push(line);
      pos = eol + 2;
      if (line[3] !== '-') break;
    }
    this.text = this.text.slice(pos);
    return lines.join('\n');
  }

  private nextEvent(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(), ms);
      const done = (): void => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
      this.wake = done;
    });
  }
}

/** Opens a client to the receiver under test, optionally from a given source address. */
type Connect = (localAddress?: string) => Promise<RawClient>;

/** Runs body with a fresh receiver; the receiver and every client are closed even on failure. */
async function withReceiver(
  opts: Partial<ReceiverOptions>,
  body: (r: Receiver, connect: Connect) => Promise<void>,
): Promise<void> {
  const receiver = await Receiver.start({ host: RECEIVER_HOST, port: 0, ...opts });
  const clients: RawClient[] = [];
  const connect = async (localAddress?: string): Promise<RawClient> => {
    const c = await RawClient.connect(receiver.host, receiver.port, localAddress);
    clients.push(c);
    return c;
  };
  try {
    await body(receiver, connect);
  } finally {
    for (const c of clients) c.destroy();
    await receiver.stop();
  }
}

/** Connects, reads the banner and says EHLO; returns the client. */
async function greeted(connect: Connect): Promise<RawClient> {
  const c = await connect();
  assert.match(await c.reply(), /^220 /);
  c.write('EHLO client.test\r\n');
  assert.match(await c.reply(), /^250[ -]/);
  return c;
}

/** Sends one whole transaction in one write and returns its four replies. */
async function sendMessage(c: RawClient, from: string, to: string, body: string) {
  c.write(`MAIL FROM:<${from}>\r\nRCPT TO:<${to}>\r\nDATA\r\n${body}.\r\n`);
  return c.replies(4);
}

/** Waits until cond() holds, polling; fails after WAIT_MS. */
async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A clock that only moves when told to. */
function fakeClock(start = 1_700_000_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

// ---- DNS ----

describe('TestDnsServer', () => {
  let dns: TestDnsServer;
  let resolver: Resolver;
  const longTxt = 'v=DKIM1; k=rsa; p=' + 'A'.repeat(700);
  const manyMx = Array.from({ length: 40 }, (_, i) => ({
    exchange: `mx${i}.a-rather-long-provider-host-name.example.test`,
    priority: i,
  }));

  before(async () => {
    dns = await TestDnsServer.start();
    // c-ares defaults to 5 s and 4 tries; the server is local, so fail fast instead (ms).
    resolver = new Resolver({ timeout: 500, tries: 1 });
    resolver.setServers([dns.address]);
    dns.set('example.test', {
      mx: [{ exchange: 'mx.example.test', priority: 10 }],
      a: ['192.0.2.1'],
      aaaa: ['2001:db8::1'],
      txt: ['v=spf1 ip4:192.0.2.0/24 -all'],
    });
    dns.set('Mixed.Case.Test.', { a: ['192.0.2.9'] });
    dns.set('nullmx.test', { mx: [{ exchange: '', priority: 0 }] });
    dns.set('dkim._domainkey.example.test', { txt: [longTxt] });
    dns.set(reverseName('192.0.2.1'), { ptr: ['mx.example.test'] });
    dns.set('alias.test', { cname: 'example.test' });
    dns.set('broken.test', { servfail: true });
    dns.set('many.test', { mx: manyMx });
  });
  after(() => dns.stop());

  const answers: { name: string; query: (r: Resolver) => Promise<unknown>; want: unknown }[] = [
    {
      name: 'MX',
      query: (r) => r.resolveMx('example.test'),
      want: [{ exchange: 'mx.example.test', priority: 10 }],
    },
    { name: 'A', query: (r) => r.resolve4('example.test'), want: ['192.0.2.1'] },
    { name: 'AAAA', query: (r) => r.resolve6('example.test'), want: ['2001:db8::1'] },
    {
      name: 'TXT',
      query: (r) => r.resolveTxt('example.test'),
      want: [['v=spf1 ip4:192.0.2.0/24 -all']],
    },
    { name: 'PTR', query: (r) => r.reverse('192.0.2.1'), want: ['mx.example.test'] },
    {
      name: 'Null MX',
      query: (r) => r.resolveMx('nullmx.test'),
      want: [{ exchange: '', priority: 0 }],
    },
    { name: 'CNAME', query: (r) => r.resolveCname('alias.test'), want: ['example.test'] },
    { name: 'A via CNAME', query: (r) => r.resolve4('alias.test'), want: ['192.0.2.1'] },
    { name: 'case-insensitive', query: (r) => r.resolve4('MIXED.case.test'), want: ['192.0.2.9'] },
  ];
  for (const c of answers) {
    it(`answers ${c.name}`, TEST, async () => assert.deepEqual(await c.query(resolver), c.want));
  }

  const failures: { name: string; query: (r: Resolver) => Promise<unknown>; code: string }[] = [
    { name: 'NXDOMAIN', query: (r) => r.resolveMx('nowhere.test'), code: 'ENOTFOUND' },
    { name: 'NODATA', query: (r) => r.resolveMx('mixed.case.test'), code: 'ENODATA' },
    { name: 'SERVFAIL', query: (r) => r.resolve4('broken.test'), code: 'ESERVFAIL' },
    { name: 'SERVFAIL for MX', query: (r) => r.resolveMx('broken.test'), code: 'ESERVFAIL' },
  ];
  for (const c of failures) {
    it(`answers ${c.name} as ${c.code}`, TEST, async () => {
      await assert.rejects(c.query(resolver), { code: c.code });
    });
  }

  it('splits a long TXT value into strings of at most 255 bytes', TEST, async () => {
    const [record] = await resolver.resolveTxt('dkim._domainkey.example.test');
    assert.ok(record && record.length === 3, `got ${JSON.stringify(record)}`);
    assert.ok(record.every((s) => s.length <= 255));
    assert.equal(record.join(''), longTxt);
  });

  it('answers a big MX set over TCP after a truncated UDP answer', TEST, async () => {
    const tcpBefore = dns.tcpQueryCount;
    const mx = await resolver.resolveMx('many.test');
    assert.equal(mx.length, 40);
    assert.deepEqual(
      mx.sort((a, b) => a.priority - b.priority),
      manyMx,
    );
    assert.ok(dns.tcpQueryCount > tcpBefore, 'the resolver should have retried over TCP');
  });

  it('answers late with delayMs (a resolver timeout)', TEST, async () => {
    dns.set('slow.test', { a: ['192.0.2.7'], delayMs: 1000 });
    // Shorter than delayMs so the answer is too late (ms).
    const impatient = new Resolver({ timeout: 100, tries: 1 });
    impatient.setServers([dns.address]);
    await assert.rejects(impatient.resolve4('slow.test'), { code: 'ETIMEOUT' });
  });

  it('applies set, merge and remove live, and counts queries', TEST, async () => {
    const before = dns.queryCount;
    dns.set('live.test', { a: ['192.0.2.20'], txt: ['keep me'] });
    dns.merge('live.test', { a: ['192.0.2.21'] });
    assert.deepEqual(await resolver.resolve4('live.test'), ['192.0.2.21']);
    assert.deepEqual(await resolver.resolveTxt('live.test'), [['keep me']]);
    dns.set('live.test', { a: ['192.0.2.22'] });
    await assert.rejects(resolver.resolveTxt('live.test'), { code: 'ENODATA' });
    dns.remove('LIVE.test');
    await assert.rejects(resolver.resolve4('live.test'), { code: 'ENOTFOUND' });
    assert.ok(dns.queryCount >= before + 4);
  });

  it('listens on TCP and UDP on the same port', TEST, async () => {
    const [host = '', port = ''] = dns.address.split(':');
    const socket = net.connect({ host, port: Number(port) });
    await once(socket, 'connect', bounded());
    socket.destroy();
  });

  it('shrugs off garbage datagrams and TCP frames', TEST, async () => {
    const [host = '', port = ''] = dns.address.split(':');
    const udp = dgram.createSocket('udp4');
    try {
      // A header claiming one question, then noise (random counts would make dns2 slow).
      const oneQuestion = Buffer.from([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
      const datagrams = [
        Buffer.alloc(0),
        randomBytes(5),
        oneQuestion,
        Buffer.concat([oneQuestion, randomBytes(20)]),
      ];
      for (const d of datagrams) udp.send(d, Number(port), host);
      const tcp = net.connect({ host, port: Number(port) });
      await once(tcp, 'connect', bounded());
      tcp.resume(); // read (and drop) whatever comes back, so that 'close' can follow
      tcp.end(Buffer.concat([Buffer.from([0, 32]), oneQuestion, randomBytes(20)]));
      await once(tcp, 'close', bounded());
    } finally {
      udp.close();
    }
    assert.deepEqual(await resolver.resolve4('example.test'), ['192.0.2.1']);
  });

  const reverse: [string, string][] = [
    ['1.2.3.4', '4.3.2.1.in-addr.arpa'],
    ['2001:db8::1', `1.${'0.'.repeat(23)}8.b.d.0.1.0.0.2.ip6.arpa`],
  ];
  for (const [ip, want] of reverse) {
    it(`reverseName(${ip})`, TEST, () => assert.equal(reverseName(ip), want));
  }
});

// ---- Wire helpers ----

describe('smtp-wire', () => {
  const replies: [string, string][] = [
    ['250 2.0.0 Ok', '250 2.0.0 Ok\r\n'],
    ['550 5.1.1 No\nsuch user', '550-5.1.1 No\r\n550 such user\r\n'],
    ['250 mx\n250 PIPELINING\nSIZE 10', '250-mx\r\n250-PIPELINING\r\n250 SIZE 10\r\n'],
  ];
  for (const [reply, wire] of replies) {
    it(`formats ${JSON.stringify(reply)}`, TEST, () => assert.equal(formatReply(reply), wire));
  }

  const stuffed: [string, string][] = [
    ['no dots\r\n', 'no dots\r\n'],
    ['..leading\r\n', '.leading\r\n'],
    ['a\r\n..\r\n...b\r\nc.d\r\n', 'a\r\n.\r\n..b\r\nc.d\r\n'],
  ];
  for (const [wire, want] of stuffed) {
    it(`unstuffs ${JSON.stringify(wire)}`, TEST, () => {
      assert.equal(unstuffDots(Buffer.from(wire)).toString(), want);
    });
  }

  it('finds CRLF.CRLF wherever the chunks split it', TEST, () => {
    const stream = 'Subject: x\r\n\r\n..dot\r\nend\r\n.\r\nQUIT\r\n';
    for (let cut = 0; cut <= stream.length; cut++) {
      const collector = new DataCollector(1_000_000);
      const first = Buffer.from(stream.slice(0, cut));
      const second = Buffer.from(stream.slice(cut));
      const endFirst = collector.push(first);
      const rest =
        endFirst >= 0
          ? first.subarray(endFirst).toString() + second.toString()
          : second.subarray(collector.push(second)).toString();
      assert.equal(collector.body().toString(), 'Subject: x\r\n\r\n.dot\r\nend\r\n', `cut ${cut}`);
      assert.equal(rest, 'QUIT\r\n', `cut ${cut}`);
    }
  });

  it('ends an empty body at once and byte by byte', TEST, () => {
    const collector = new DataCollector(100);
    const bytes = Buffer.from('.\r\n');
    assert.equal(collector.push(bytes.subarray(0, 1)), -1);
    assert.equal(collector.push(bytes.subarray(1, 2)), -1);
    assert.equal(collector.push(bytes.subarray(2)), 1);
    assert.equal(collector.body().length, 0);
  });
});

// ---- Receiver ----

describe('Receiver', () => {
  it('accepts a pipelined transaction sent in one write', TEST, async () => {
    await withReceiver({ hostname: 'mx.pipe.test' }, async (r, connect) => {
      const c = await connect(SENDER_IP);
      assert.equal(await c.reply(), '220 mx.pipe.test ESMTP');
      const head = 'EHLO me.test\r\nMAIL FROM:<a@src.test>\r\nRCPT TO:<b@dst.test>\r\n';
      c.write(`${head}RCPT TO:<c@dst.test>\r\nDATA\r\n`);
      const [ehlo, mail, rcpt1, rcpt2, data] = await c.replies(5);
      assert.match(ehlo ?? '', /^250-mx\.pipe\.test[\s\S]*\n250-PIPELINING\n/);
      assert.deepEqual([mail, rcpt1, rcpt2], ['250 2.1.0 Ok', '250 2.1.5 Ok', '250 2.1.5 Ok']);
      assert.match(data ?? '', /^354 /);
      c.write('Subject: hi\r\n\r\nHello\r\n.\r\nQUIT\r\n');
      assert.match(await c.reply(), /^250 2\.0\.0 Ok: queued as /);
      assert.equal(await c.reply(), '221 2.0.0 Bye');
      await c.closed();
      const [m] = r.messages;
      assert.ok(m);
      assert.equal(m.from, 'a@src.test');
      assert.deepEqual(m.to, ['b@dst.test', 'c@dst.test']);
      assert.equal(m.helo, 'me.test');
      assert.equal(m.localAddress, RECEIVER_HOST);
      assert.equal(m.remoteAddress, SENDER_IP);
      assert.equal(m.data.toString(), 'Subject: hi\r\n\r\nHello\r\n');
      assert.deepEqual(r.recipients(), ['b@dst.test', 'c@dst.test']);
    });
  });

  it('handles two whole sessions worth of commands and bodies in one write', TEST, async () => {
    await withReceiver({}, async (r, connect) => {
      const c = await connect();
      const txn = (n: number) => `MAIL FROM:<>\r\nRCPT TO:<u${n}@d.test>\r\nDATA\r\nm${n}\r\n.\r\n`;
      c.write(`HELO me\r\n${txn(1)}RSET\r\nNOOP\r\n${txn(2)}QUIT\r\n`);
      const replies = await c.replies(13);
      assert.deepEqual(
        replies.map((x) => x.slice(0, 3)),
        ['220', '250', '250', '250', '354', '250', '250', '250', '250', '250', '354', '250', '221'],
      );
      assert.deepEqual(
        r.messages.map((m) => [m.from, m.to[0], m.data.toString()]),
        [
          ['', 'u1@d.test', 'm1\r\n'],
          ['', 'u2@d.test', 'm2\r\n'],
        ],
      );
    });
  });

  it(
    'dot-unstuffs, and ends DATA only on CRLF.CRLF even when split across writes',
    TEST,
    async () => {
      await withReceiver({}, async (r, connect) => {
        const c = await greeted(connect);
        c.write('MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n');
        await c.replies(3);
        const parts = [
          '..one\r\n',
          '...two\r\n',
          'a.\r\n',
          '.b\r\n',
          'x\r\n.',
          'y\r\n',
          '.',
          '\r\n',
        ];
        for (const part of parts) {
          c.write(part);
          await new Promise((res) => setTimeout(res, 2));
        }
        assert.match(await c.reply(), /^250 /);
        assert.equal(r.messages[0]?.data.toString(), '.one\r\n..two\r\na.\r\nb\r\nx\r\ny\r\n');
      });
    },
  );

  it('sends multi-line script replies with continuation markers', TEST, async () => {
    const script = { onRcptTo: () => '550 5.1.1 No such user\nSee the postmaster page' };
    await withReceiver({ script }, async (_r, connect) => {
      const c = await greeted(connect);
      c.write('MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n');
      const [, rcpt, data] = await c.replies(3);
      assert.equal(rcpt, '550-5.1.1 No such user\n550 See the postmaster page');
      assert.match(data ?? '', /^554 5\.5\.1 /);
    });
  });

  it(
    'upgrades the same socket with STARTTLS and forgets plaintext sent after it',
    TEST,
    async () => {
      await withReceiver({ starttls: true, requireTls: true }, async (r, connect) => {
        const c = await connect();
        await c.reply();
        c.write('EHLO me\r\nMAIL FROM:<a@x.test>\r\n');
        const [ehlo, mail] = await c.replies(2);
        assert.match(ehlo ?? '', /\n250 STARTTLS$/);
        assert.match(mail ?? '', /^530 5\.7\.0 /);
        c.write('STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n');
        assert.match(await c.reply(), /^220 /);
        await c.starttls();
        c.write('EHLO me\r\n');
        assert.doesNotMatch(await c.reply(), /STARTTLS/);
        assert.deepEqual(
          (await sendMessage(c, 'a@x.test', 'b@y.test', 'hi\r\n')).map((x) => x[0]),
          ['2', '2', '3', '2'],
        );
        assert.equal(r.messages[0]?.tls, true);
        assert.equal(r.connections[0]?.tls, true);
        assert.ok(!r.transcript.some((l) => l.includes('injected')), 'plaintext must be dropped');
        c.write('QUIT\r\n');
        assert.equal(await c.reply(), '221 2.0.0 Bye');
        await c.closed();
        await until(() => r.current === 0, 'the TLS connection to be counted as closed');
      });
    },
  );

  it('greylists a triplet, then accepts it once the delay has passed', TEST, async () => {
    const clock = fakeClock();
    await withReceiver({ script: greylist(300, clock.now) }, async (r, connect) => {
      const c = await greeted(connect);
      const attempt = async (to: string) => {
        c.write(`MAIL FROM:<a@x.test>\r\nRCPT TO:<${to}>\r\nRSET\r\n`);
        return (await c.replies(3))[1];
      };
      assert.equal(await attempt('b@y.test'), '451 4.7.1 Greylisted, try again in 300 seconds');
      clock.advance(100_000);
      assert.equal(await attempt('b@y.test'), '451 4.7.1 Greylisted, try again in 200 seconds');
      assert.match((await attempt('other@y.test')) ?? '', /^451 /);
      clock.advance(200_000);
      assert.equal(await attempt('b@y.test'), '250 2.1.5 Ok');
      assert.equal(r.messages.length, 0);
    });
  });

  it('drops the connection after n body bytes with disconnectAfterBytes', TEST, async () => {
    await withReceiver({ script: dropMidData(100) }, async (r, connect) => {
      const c = await greeted(connect);
      c.write('MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n');
      assert.match((await c.replies(3))[2] ?? '', /^354 /);
      c.write('x'.repeat(1000));
      await c.closed();
      assert.equal(r.messages.length, 0);
      assert.equal(r.messageCount, 0);
    });
  });

  it('counts current and concurrent connections', TEST, async () => {
    await withReceiver({}, async (r, connect) => {
      const clients = await Promise.all(Array.from({ length: 5 }, () => connect()));
      await Promise.all(clients.map((c) => c.reply()));
      assert.equal(r.current, 5);
      assert.equal(r.maxConcurrent, 5);
      for (const c of clients.slice(0, 3)) c.destroy();
      await until(() => r.current === 2, 'three closes');
      assert.equal(r.maxConcurrent, 5);
      assert.equal(r.connections.filter((x) => x.closedAt !== undefined).length, 3);
    });
  });

  it('survives garbage, a throwing script and an error storm', TEST, async () => {
    const script = {
      onMailFrom: (_c: unknown, from: string) => {
        if (from === 'boom@x.test') throw new Error('script bug');
        return undefined;
      },
    };
    await withReceiver({ script }, async (r, connect) => {
      const c = await connect();
      await c.reply();
      c.write(Buffer.from([0, 1, 2, 255, 254, 13, 10]));
      assert.equal(await c.reply(), '500 5.5.2 Command unrecognized');
      c.write(`${'z'.repeat(10_000)}\r\n`);
      assert.equal(await c.reply(), '500 5.5.2 Line too long');
      c.write('MAIL FROM:<a@x.test>\r\nEHLO me\r\nMAIL FROM:<boom@x.test>\r\nRCPT TO:<x>\r\n');
      const [early, ehlo, boom, rcpt] = await c.replies(4);
      assert.match(early ?? '', /^503 /);
      assert.match(ehlo ?? '', /^250/);
      assert.equal(boom, '451 4.3.0 Test script failed');
      assert.match(rcpt ?? '', /^503 /);
      assert.equal(r.errors.length, 1);
      c.write('BOGUS\r\n'.repeat(30));
      const storm = await c.replies(17);
      assert.ok(storm.every((x) => x.startsWith('500 ')));
      assert.match(await c.reply(), /^421 /);
      await c.closed();
      const again = await greeted(connect);
      again.write('QUIT\r\n');
      assert.equal(await again.reply(), '221 2.0.0 Bye');
    });
  });

  it('reads an oversize body to its end, answers 552 and keeps going', TEST, async () => {
    await withReceiver({ maxMessageBytes: 100 }, async (r, connect) => {
      const c = await greeted(connect);
      const big = await sendMessage(c, 'a@x.test', 'b@y.test', 'x'.repeat(500) + '\r\n');
      assert.equal(big[3], '552 5.3.4 Message size exceeds fixed limit');
      const small = await sendMessage(c, 'a@x.test', 'b@y.test', 'small\r\n');
      assert.match(small[3] ?? '', /^250 /);
      assert.deepEqual(
        r.messages.map((m) => m.data.toString()),
        ['small\r\n'],
      );
    });
  });

  it('never answers a stalled stage', TEST, async () => {
    await withReceiver({ script: stallAt('mail') }, async (_r, connect) => {
      const c = await greeted(connect);
      c.write('MAIL FROM:<a@x.test>\r\nNOOP\r\n');
      assert.equal(await c.silentFor(200), true);
    });
  });

  it('waitForMessages rejects with a clear error on timeout', TEST, async () => {
    await withReceiver({}, async (r) => {
      await assert.rejects(r.waitForMessages(1, 50), /wanted 1 within 50 ms, 0 message/);
    });
  });

  const outcomes: {
    name: string;
    script: ReceiverScript | undefined;
    want: string[];
    stored: number;
  }[] = [
    {
      name: 'compose(unknownUsers, tempFailFirst): first message temp-fails',
      script: compose(unknownUsers(['bob']), tempFailFirst(1)),
      want: ['250', '550', '250', '354', '451'],
      stored: 0,
    },
    {
      name: 'rejectAll at RCPT',
      script: rejectAll('554 5.7.1 Blocked'),
      want: ['250', '554', '554', '554', '500'],
      stored: 0,
    },
    {
      name: 'accept by default',
      script: undefined,
      want: ['250', '250', '250', '354', '250'],
      stored: 1,
    },
  ];
  for (const o of outcomes) {
    it(`scripts: ${o.name}`, TEST, async () => {
      await withReceiver({ script: o.script }, async (r, connect) => {
        const c = await greeted(connect);
        c.write('MAIL FROM:<a@x.test>\r\nRCPT TO:<bob@y.test>\r\nRCPT TO:<alice@y.test>\r\n');
        c.write('DATA\r\nhello\r\n.\r\n');
        const replies = await c.replies(5);
        assert.deepEqual(
          replies.map((x) => x.slice(0, 3)),
          o.want,
        );
        assert.equal(r.messages.length, o.stored);
      });
    });
  }

  it('rateLimit421 answers 421 at MAIL past the limit and closes', TEST, async () => {
    const clock = fakeClock();
    await withReceiver({ script: rateLimit421(2, clock.now) }, async (_r, connect) => {
      const c = await greeted(connect);
      c.write('MAIL FROM:<a@x.test>\r\nRSET\r\nMAIL FROM:<a@x.test>\r\nRSET\r\n');
      assert.deepEqual(
        (await c.replies(4)).map((x) => x.slice(0, 3)),
        ['250', '250', '250', '250'],
      );
      c.write('MAIL FROM:<a@x.test>\r\n');
      assert.equal(await c.reply(), '421 4.7.0 Too many messages, slow down');
      await c.closed();
      clock.advance(1000);
      const d = await greeted(connect);
      d.write('MAIL FROM:<a@x.test>\r\n');
      assert.equal(await d.reply(), '250 2.1.0 Ok');
    });
  });

  it('a blocked source gets a 554 banner and only QUIT works after it', TEST, async () => {
    await withReceiver({ script: blockSources([SENDER_IP]) }, async (_r, connect) => {
      const ok = await connect();
      assert.match(await ok.reply(), /^220 /);
      const c = await connect(SENDER_IP);
      assert.equal(
        await c.reply(),
        `554 5.7.1 Service unavailable; client host [${SENDER_IP}] blocked`,
      );
      c.write('EHLO me\r\nQUIT\r\n');
      assert.deepEqual(
        (await c.replies(2)).map((x) => x.slice(0, 3)),
        ['503', '221'],
      );
    });
  });
});

// ---- The world ----

describe('TestWorld', () => {
  let world: TestWorld;
  before(async () => {
    world = await TestWorld.start();
  });
  after(() => world.stop());

  it('points domains at providers on distinct loopback addresses and one port', TEST, async () => {
    const big = await world.addProvider(['big.test', 'big-alias.test']);
    const small = await world.addProvider(['small.test'], { mxName: 'in.small-mail.test' });
    assert.notEqual(big.host, small.host);
    assert.equal(big.port, world.smtpPort);
    assert.equal(small.port, world.smtpPort);

    const resolver = new Resolver({ timeout: 500, tries: 1 });
    resolver.setServers([world.dns.address]);
    const [mx] = await resolver.resolveMx('big-alias.test');
    assert.deepEqual(mx, { exchange: 'mx.big.test', priority: 10 });
    assert.deepEqual(await resolver.resolve4('mx.big.test'), [big.host]);
    assert.deepEqual(await resolver.resolve4('in.small-mail.test'), [small.host]);
    assert.deepEqual(await resolver.reverse(small.host), ['in.small-mail.test']);

    const c = await RawClient.connect(big.host, world.smtpPort);
    try {
      assert.equal(await c.reply(), '220 mx.big.test ESMTP');
      c.write('EHLO me\r\n');
      await c.reply();
      await sendMessage(c, 'a@x.test', 'someone@big-alias.test', 'hi\r\n');
      await big.waitForMessages(1, WAIT_MS);
      assert.deepEqual(big.recipients(), ['someone@big-alias.test']);
    } finally {
      c.destroy();
    }
  });

  it('nextIp gives an address where nothing listens', TEST, async () => {
    const ip = world.nextIp();
    assert.match(ip, /^127\.0\.\d+\.\d+$/);
    const socket = net.connect({ host: ip, port: world.smtpPort });
    await assert.rejects(once(socket, 'connect', bounded()), { code: 'ECONNREFUSED' });
  });
});
