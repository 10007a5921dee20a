/**
 * Interoperability with real peers nobody here wrote, all on loopback: swaks and Postfix's
 * smtp-source inject into an in-process engine; a private Postfix instance and smtp-sink
 * receive from it. A missing tool fails the suite when CI is set, and skips it otherwise.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, chmodSync, chownSync, constants, mkdirSync, mkdtempSync } from 'node:fs';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TestWorld, type Receiver } from '../src/testworld/index.js';
import {
  injectSmtp,
  recordsOf,
  simpleMessage,
  startEngine,
  waitFor,
  waitForRecord,
  type TestEngine,
} from './support/harness.js';

// A loopback address outside smtp.allowedNetworks below: only AUTH lets it relay.
const OUTSIDER = '127.0.0.77';
// Where the real receivers listen, on the test world's SMTP port: the world's own receivers
// take 127.0.1.x and up, so 127.0.3.x stays free for them.
const POSTFIX_IP = '127.0.3.1';
const SINK_IP = '127.0.3.2';
const USER = { name: 'alice', password: 'wonderland-secret' };
const FROM = 'a@sender.test';
// Postfix's virtual(8) delivers as this uid/gid ("nobody"): any unprivileged account works.
const MAILBOX_UID = 65534;
// Bound on any one peer program run, in milliseconds; each finishes in well under 10 s here.
const RUN_TIMEOUT_MS = 30_000;

/** Every child process started here, so that even an aborted run leaves none behind. */
const children = new Set<ChildProcess>();
/** Config directories of running private Postfix instances, for the same reason. */
const postfixDirs = new Set<string>();

process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
  for (const dir of postfixDirs) spawnSync(tool('postfix') ?? 'postfix', ['-c', dir, 'abort']);
});

/** The absolute path of a program on PATH or in /usr/sbin, or undefined. */
function tool(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin'];
  for (const dir of dirs.filter(Boolean)) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** Why these programs cannot run here, or undefined when they all can. */
function missing(names: string[], needRoot = false): string | undefined {
  const absent = names.filter((n) => tool(n) === undefined).join(', ');
  if (absent) return `${absent} not installed (apt-get install postfix swaks)`;
  if (needRoot && process.getuid?.() !== 0) return 'a private Postfix instance needs root';
  return undefined;
}

/** The describe() options for a suite needing programs: skip unless CI (where it must fail). */
function needs(names: string[], needRoot = false): { skip?: string } {
  const why = missing(names, needRoot);
  return why && !process.env.CI ? { skip: why } : {};
}

/** Fails the suite (in CI) when a program it needs is absent. */
function assertTools(names: string[], needRoot = false): void {
  const why = missing(names, needRoot);
  if (why) assert.fail(`interop: ${why}; CI must install them (.ci/run)`);
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end; a non-zero exit is a result, not an error. */
function run(name: string, args: string[], timeoutMs = RUN_TIMEOUT_MS): Promise<RunResult> {
  const child = spawn(tool(name) ?? name, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, ...out });
    });
  });
}

/** Resolves once something accepts TCP connections on host:port (polled, for up to 10 s). */
async function listening(host: string, port: number): Promise<void> {
  const probe = () =>
    new Promise<boolean>((resolve) => {
      const socket = connect({ host, port }, () => (socket.destroy(), resolve(true)));
      socket.once('error', () => resolve(false));
    });
  await waitFor(`a listener on ${host}:${port}`, probe, 10_000);
}

/** smtp-sink with -c: its running counter goes to a pipe, read here. */
class SmtpSink {
  private messages = 0;

  private constructor(private readonly child: ChildProcess) {
    child.stdout!.on('data', (d: Buffer) => this.observe(d.toString()));
  }

  /** Starts smtp-sink on host:port and waits until it accepts connections. */
  static async start(host: string, port: number): Promise<SmtpSink> {
    // As root smtp-sink must drop privileges (-u); the backlog of 256 covers any burst here.
    const user = process.getuid?.() === 0 ? ['-u', 'nobody'] : [];
    const args = [...user, '-c', `${host}:${port}`, '256'];
    const child = spawn(tool('smtp-sink')!, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(child);
    await listening(host, port);
    return new SmtpSink(child);
  }

  /** Messages received so far (the counter's last "mesg=" value). */
  get count(): number {
    return this.messages;
  }

  /** Stops the sink. */
  stop(): void {
    this.child.kill('SIGTERM');
    children.delete(this.child);
  }

  /** Keeps the last "mesg=N" of a chunk of counter lines (each ends in a bare CR). */
  private observe(text: string): void {
    const all = [...text.matchAll(/mesg=(\d+)/g)];
    const last = all[all.length - 1];
    if (last) this.messages = Number(last[1]);
  }
}

/**
 * A private Postfix instance as a receiving MX: its own config, queue and data directories
 * under one temp dir, smtpd on one address, and maildirs under <dir>/mail for one domain.
 */
class PrivatePostfix {
  private constructor(readonly dir: string) {}

  /** Writes the configuration, runs `postfix check`, then `postfix start`. */
  static async start(listen: string, domain: string, users: string[]): Promise<PrivatePostfix> {
    const pf = new PrivatePostfix(mkdtempSync(join(tmpdir(), 'gridpost-postfix-')));
    try {
      pf.configure(listen, domain, users);
      await pf.postconf(receivingParams(pf.dir, domain));
      await pf.command('check');
      postfixDirs.add(pf.conf);
      await pf.command('start');
      return pf;
    } catch (err) {
      await pf.stop();
      throw err;
    }
  }

  get conf(): string {
    return join(this.dir, 'conf');
  }

  /** The files in a user's maildir new/ folder. */
  maildir(domain: string, user: string): string[] {
    const folder = join(this.dir, 'mail', domain, user, 'new');
    try {
      return readdirSync(folder).map((f) => join(folder, f));
    } catch {
      return [];
    }
  }

  /** Stops the instance (postfix stop waits for the master to exit) and removes its files. */
  async stop(): Promise<void> {
    if (postfixDirs.has(this.conf)) {
      await this.command('stop').catch(() => this.command('abort'));
      postfixDirs.delete(this.conf);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  /**
   * Directories and files: queue and data belong to Postfix (mail_owner), the mailboxes to
   * MAILBOX_UID; master.cf and the mailbox table; main.cf is filled in by postconf.
   */
  private configure(listen: string, domain: string, users: string[]): void {
    // virtual(8) runs as MAILBOX_UID and must traverse the temp dir (mkdtemp makes it 0700).
    chmodSync(this.dir, 0o755);
    for (const d of ['conf', 'queue', 'data', 'mail']) mkdirSync(join(this.dir, d));
    const owner = spawnSync('id', ['-u', 'postfix'], { encoding: 'utf8' }).stdout.trim();
    chownSync(join(this.dir, 'data'), Number(owner), 0);
    chownSync(join(this.dir, 'mail'), MAILBOX_UID, MAILBOX_UID);
    writeFileSync(join(this.conf, 'master.cf'), masterCf(listen));
    writeFileSync(join(this.conf, 'main.cf'), '');
    const boxes = users.map((u) => `${u}@${domain} ${domain}/${u}/\n`).join('');
    writeFileSync(join(this.conf, 'vmailbox'), boxes);
  }

  private async postconf(params: Record<string, string>): Promise<void> {
    const args = Object.entries(params).map(([k, v]) => `${k}=${v}`);
    const res = await run('postconf', ['-c', this.conf, '-e', ...args]);
    assert.equal(res.code, 0, `postconf failed: ${res.stderr}`);
  }

  /** Runs `postfix -c <conf> <verb>`; its complaints go to the maillog file, quoted on error. */
  private async command(verb: string): Promise<void> {
    const res = await run('postfix', ['-c', this.conf, verb]);
    if (res.code === 0) return;
    let log = '(no maillog yet)';
    try {
      log = readFileSync(join(this.dir, 'maillog'), 'utf8').split('\n').slice(-10).join('\n');
    } catch {
      // Postfix failed before it could log anything.
    }
    throw new Error(`postfix ${verb} failed (exit ${res.code}):\n${log}`);
  }
}

/**
 * master.cf: smtpd on `listen` and the daemons a receiving MX needs. None is chrooted:
 * Debian's master.cf chroots most of them into the queue directory, which in a private
 * instance lacks the files they would need there (resolv.conf, services, ...).
 */
function masterCf(listen: string): string {
  const services = [
    `${listen} inet n - n - - smtpd`,
    'pickup unix n - n 60 1 pickup',
    'cleanup unix n - n - 0 cleanup',
    'qmgr unix n - n 300 1 qmgr',
    'rewrite unix - - n - - trivial-rewrite',
    'bounce unix - - n - 0 bounce',
    'defer unix - - n - 0 bounce',
    'trace unix - - n - 0 bounce',
    'verify unix - - n - 1 verify',
    'flush unix n - n 1000? 0 flush',
    'proxymap unix - - n - - proxymap',
    'smtp unix - - n - - smtp',
    'relay unix - - n - - smtp',
    'showq unix n - n - - showq',
    'error unix - - n - - error',
    'retry unix - - n - - error',
    'discard unix - - n - - discard',
    'local unix - n n - - local',
    'virtual unix - n n - - virtual',
    'anvil unix - - n - 1 anvil',
    'scache unix - - n - 1 scache',
    'postlog unix-dgram n - n - 1 postlogd',
  ];
  return services.join('\n') + '\n';
}

/** main.cf of the receiving MX: delivery to maildirs of a virtual mailbox domain. */
function receivingParams(dir: string, domain: string): Record<string, string> {
  return {
    compatibility_level: '3.6',
    queue_directory: join(dir, 'queue'),
    data_directory: join(dir, 'data'),
    // No syslog here: log to a file, which must sit under one of these prefixes.
    maillog_file: join(dir, 'maillog'),
    maillog_file_prefixes: dir,
    myhostname: `mx.${domain}`,
    // The test domain is a virtual mailbox domain, so it must not also be in mydestination
    // (Postfix warns about a domain listed in both).
    mydestination: 'localhost',
    // `postfix check` wants an address that a local interface carries; master.cf binds smtpd
    // to its own loopback address regardless.
    inet_interfaces: '127.0.0.1',
    inet_protocols: 'ipv4',
    mynetworks: '127.0.0.0/8',
    alias_maps: '',
    alias_database: '',
    // The client is always 127.0.0.1 and there is no DNS server for Postfix here.
    smtpd_peername_lookup: 'no',
    virtual_mailbox_domains: domain,
    virtual_mailbox_base: join(dir, 'mail'),
    virtual_mailbox_maps: `texthash:${join(dir, 'conf', 'vmailbox')}`,
    virtual_uid_maps: `static:${MAILBOX_UID}`,
    virtual_gid_maps: `static:${MAILBOX_UID}`,
  };
}

/** Runs swaks against the engine with the given extra arguments. */
function swaks(port: number, to: string, extra: string[] = []): Promise<RunResult> {
  const base = ['--server', `127.0.0.1:${port}`, '--from', FROM, '--to', to];
  return run('swaks', [...base, '--helo', 'swaks.client.test', ...extra]);
}

/** The engine's message id from a "250 ... queued as <id>" line of a transcript. */
function queuedAs(transcript: string): string | undefined {
  return /<[-~] {1,2}250 [\d.]+ Ok: queued as (\S+)/.exec(transcript)?.[1];
}

/** Waits until the receiver has a message for `address`, and returns it. */
function messageFor(rx: Receiver, address: string) {
  return waitFor(`a message for ${address}`, () => rx.messages.find((m) => m.to.includes(address)));
}

/** MX <domain> -> mx.<domain> -> ip in the test world's DNS. */
function pointMx(domain: string, ip: string): void {
  world.dns.set(domain, { mx: [{ exchange: `mx.${domain}`, priority: 10 }] });
  world.dns.set(`mx.${domain}`, { a: [ip] });
}

let world: TestWorld;
let t: TestEngine;

before(async () => {
  world = await TestWorld.start();
  t = await startEngine(world, { smtp: { allowedNetworks: ['127.0.0.1/32'], users: [USER] } });
});
after(async () => {
  await t?.stop();
  await world?.stop();
});

describe('swaks injecting into the engine', needs(['swaks']), () => {
  let rx: Receiver;

  before(async () => {
    assertTools(['swaks']);
    rx = await world.addProvider(['swaks.test']);
  });

  it('delivers a plain message and records the Delivery', async () => {
    const res = await swaks(t.smtpPort, 'plain@swaks.test');
    assert.equal(res.code, 0, res.stdout + res.stderr);
    const id = queuedAs(res.stdout);
    assert.ok(id, `swaks saw a 250 naming the message id:\n${res.stdout}`);
    const got = await messageFor(rx, 'plain@swaks.test');
    assert.match(got.data.toString(), /X-Mailer: swaks/);
    const d = await waitForRecord(t, 'plain@swaks.test', 'Delivery');
    assert.equal(d.messageId, id);
    assert.equal(d.mxIp, rx.host);
  });

  it('accepts a pipelined transaction (RFC 2920) with two recipients', async () => {
    const to = 'pipe1@swaks.test,pipe2@swaks.test';
    const res = await swaks(t.smtpPort, to, ['--pipeline']);
    assert.equal(res.code, 0, res.stdout + res.stderr);
    // Pipelining, swaks writes MAIL, both RCPTs and DATA before it reads any reply.
    assert.match(res.stdout, / -> MAIL FROM:.*\n -> RCPT TO:.*\n -> RCPT TO:.*\n -> DATA/);
    await messageFor(rx, 'pipe1@swaks.test');
    await waitForRecord(t, 'pipe1@swaks.test', 'Delivery');
    await waitForRecord(t, 'pipe2@swaks.test', 'Delivery');
  });

  it('relays for an outside address after STARTTLS and AUTH PLAIN', async () => {
    const auth = ['--auth', 'PLAIN', '--auth-user', USER.name, '--auth-password', USER.password];
    const extra = ['--tls', ...auth, '--local-interface', OUTSIDER];
    const res = await swaks(t.smtpPort, 'authed@swaks.test', extra);
    assert.equal(res.code, 0, res.stdout + res.stderr);
    assert.match(res.stdout, /<- {1,2}220 .*\n=== TLS started/);
    // After STARTTLS swaks marks the lines it exchanges inside TLS with '~'.
    assert.match(res.stdout, /<~ {1,2}235 2\.7\.0 Authentication successful/);
    assert.ok(queuedAs(res.stdout), 'the 250 came inside TLS');
    const got = await messageFor(rx, 'authed@swaks.test');
    assert.match(got.data.toString(), /^Received: from swaks\.client\.test \(\[127\.0\.0\.77\]\)/);
    assert.match(got.data.toString(), /with ESMTPSA id/, 'Received names TLS and AUTH (RFC 3848)');
    const d = await waitForRecord(t, 'authed@swaks.test', 'Delivery');
    const reception = t.engine.recorder.forMessage(d.messageId).find((r) => r.type === 'Reception');
    assert.deepEqual(reception?.type === 'Reception' && reception.client, {
      ip: OUTSIDER,
      user: USER.name,
    });
  });

  it('refuses to relay for an outside address without AUTH: 554 5.7.1', async () => {
    const res = await swaks(t.smtpPort, 'denied@swaks.test', ['--local-interface', OUTSIDER]);
    // swaks exits 24 when the server refuses a RCPT.
    assert.equal(res.code, 24, res.stdout + res.stderr);
    assert.match(res.stdout, /<\*\* {1,2}554 5\.7\.1 Relay access denied/);
    const rejected = await waitForRecord(t, 'denied@swaks.test', 'Rejected');
    assert.equal(rejected.reason, 'relay-denied');
    assert.equal(rx.messages.filter((m) => m.to.includes('denied@swaks.test')).length, 0);
  });
});

describe('smtp-source injecting into the engine', needs(['smtp-source']), () => {
  before(() => assertTools(['smtp-source']));

  it('delivers all 500 messages sent over 5 reused sessions', { timeout: 30_000 }, async () => {
    const rx = await world.addProvider(['source.test'], { retainMessages: 10 });
    const before = t.engine.status.counters.delivered;
    const envelope = ['-f', 'load@sender.test', '-t', 'rx@source.test'];
    const load = ['-s', '5', '-m', '500', '-l', '5120', '-d', ...envelope];
    const res = await run('smtp-source', [...load, `127.0.0.1:${t.smtpPort}`]);
    assert.equal(res.code, 0, `smtp-source: ${res.stderr}`);
    await rx.waitForMessages(500, 20_000);
    assert.equal(rx.messageCount, 500);
    assert.ok(rx.messages.every((m) => m.data.length > 5120 && m.to[0] === 'rx@source.test'));
    const delivered = () => t.engine.status.counters.delivered - before >= 500;
    await waitFor('500 Delivery records', delivered);
    assert.equal(t.engine.status.counters.delivered - before, 500);
  });
});

describe('Postfix as the receiving MX', needs(['postfix', 'postconf'], true), () => {
  let postfix: PrivatePostfix | undefined;

  before(async () => {
    assertTools(['postfix', 'postconf'], true);
    const listen = `${POSTFIX_IP}:${world.smtpPort}`;
    postfix = await PrivatePostfix.start(listen, 'postfix.test', ['alice']);
    pointMx('postfix.test', POSTFIX_IP);
  });
  after(async () => {
    await postfix?.stop();
  });

  it('lands the message in the maildir, with our Received and their queue id', async () => {
    const to = 'alice@postfix.test';
    const res = await injectSmtp(t.smtpPort, FROM, [to], simpleMessage(FROM, to));
    const id = /queued as (\S+)/.exec(res.data?.text ?? '')?.[1];
    assert.ok(id, 'the engine accepted the message');
    const maildir = () => postfix!.maildir('postfix.test', 'alice')[0];
    const file = await waitFor('the maildir file', maildir);
    const text = readFileSync(file, 'utf8');
    // Our trace field, as the intake wrote it; Postfix stores the maildir file with LF ends.
    const ours =
      'Received: from client.test ([127.0.0.1])\n' +
      `\tby engine.test (Gridpost) with ESMTP id ${id}`;
    assert.ok(text.includes(ours), `our Received field in:\n${text}`);
    const theirs = /by mx\.postfix\.test \(Postfix\) with ESMTP id (\w+)/.exec(text)?.[1];
    assert.ok(theirs, 'Postfix added its Received field with its queue id');
    const d = await waitForRecord(t, to, 'Delivery');
    assert.equal(d.mxHost, 'mx.postfix.test');
    assert.equal(d.mxIp, POSTFIX_IP);
    assert.equal(d.reply.code, 250);
    assert.equal(d.reply.text, `Ok: queued as ${theirs}`);
  });

  it('records a Bounce for the user Postfix does not know (550 5.1.1)', async () => {
    const to = 'nobody-here@postfix.test';
    await injectSmtp(t.smtpPort, FROM, [to], simpleMessage(FROM, to));
    const b = await waitForRecord(t, to, 'Bounce');
    assert.equal(b.reply.code, 550);
    assert.equal(b.reply.enhanced, '5.1.1');
    assert.match(b.reply.text, /User unknown in virtual mailbox table/);
    const types = recordsOf(t, to).map((r) => r.type);
    assert.deepEqual(types, ['Bounce'], 'one attempt: no retry of a permanent refusal');
  });
});

describe('smtp-sink as a fast receiver', needs(['smtp-sink', 'smtp-source']), () => {
  let sink: SmtpSink | undefined;

  before(async () => {
    assertTools(['smtp-sink', 'smtp-source']);
    sink = await SmtpSink.start(SINK_IP, world.smtpPort);
    pointMx('sink.test', SINK_IP);
  });
  after(() => sink?.stop());

  it('delivers 1,000 messages, each with a Delivery record', { timeout: 30_000 }, async () => {
    const before = t.engine.status.counters.delivered;
    const envelope = ['-f', 'load@sender.test', '-t', 'rx@sink.test'];
    const load = ['-s', '10', '-m', '1000', '-l', '1024', '-d', ...envelope];
    const res = await run('smtp-source', [...load, `127.0.0.1:${t.smtpPort}`]);
    assert.equal(res.code, 0, `smtp-source: ${res.stderr}`);
    const counted = () => t.engine.status.counters.delivered - before >= 1000;
    await waitFor('1000 Delivery records', counted, 20_000);
    assert.equal(t.engine.status.counters.delivered - before, 1000);
    await waitFor('smtp-sink to count 1000 messages', () => sink!.count >= 1000);
    assert.equal(sink!.count, 1000);
  });
});
