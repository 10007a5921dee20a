// The test world's real peers, programs nobody here wrote: Postfix, smtp-sink and smtp-source,
// found on PATH or in /usr/sbin, run on loopback, and killed if this process exits first.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, chmodSync, chownSync, constants, mkdirSync, mkdtempSync } from 'node:fs';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { performance } from 'node:perf_hooks';

/** How a peer program ended and what it printed. */
export interface PeerResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A workload for smtp-source: `messages` of `size` bytes over `sessions`, one envelope. */
export interface SourceLoad {
  host: string;
  port: number;
  sessions: number;
  messages: number;
  /** Message size in bytes (smtp-source -l). */
  size: number;
  from: string;
  to: string;
  /** Kill smtp-source after this many milliseconds; no limit when absent. */
  timeoutMs?: number;
}

/** How to set up a private Postfix instance. */
export interface PostfixOptions {
  /** smtpd's address and port, e.g. 127.0.3.1:2525. */
  listen: string;
  /** $myhostname: the name in its greeting and its Received fields. */
  hostname: string;
  /** A virtual mailbox domain whose users get maildirs under <dir>/mail/<domain>/<user>/. */
  mailboxes?: { domain: string; users: string[] };
  /** More main.cf parameters (relayhost, transport_maps, ...); they win over the stock ones. */
  params?: Record<string, string>;
}

// Bound on one Postfix administration command (postconf, postfix, postqueue), in milliseconds:
// each finishes in well under 10 s; the bound only keeps a wedged one from hanging the caller.
const ADMIN_TIMEOUT_MS = 30_000;
// A started smtp-sink must accept connections within 10 s; we probe every 20 ms.
const LISTEN_WAIT_MS = 10_000;
const LISTEN_POLL_MS = 20;
// smtp-sink's default listen backlog: more than the sessions any test opens at once.
const SINK_BACKLOG = 256;
// Postfix's virtual(8) delivers as this uid/gid ("nobody"): any unprivileged account works.
const MAILBOX_UID = 65534;
// Postfix's mail_owner: the instance's data directory (master.lock) must belong to it.
const POSTFIX_USER = 'postfix';
// The Debian package of each program that is not in the postfix package.
const PACKAGE: Record<string, string> = { swaks: 'swaks' };

/** Peer processes still running, and config dirs of running Postfix instances. */
const children = new Set<ChildProcess>();
const postfixConfs = new Set<string>();
let exitHookInstalled = false;

/** Kills the child with SIGKILL should this process exit while it still runs. */
export function killOnExit(child: ChildProcess): void {
  installExitHook();
  children.add(child);
  child.once('exit', () => children.delete(child));
}

/** On exit: SIGKILL to every tracked child, `postfix abort` for every running instance. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of children) child.kill('SIGKILL');
    for (const conf of postfixConfs) spawnSync(tool('postfix') ?? 'postfix', ['-c', conf, 'abort']);
  });
}

/** The absolute path of a program on PATH or in /usr/sbin or /sbin, or undefined. */
export function tool(name: string): string | undefined {
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

/** Why these programs cannot run here (absent, or root needed), or undefined when they can. */
export function peersUnavailable(
  names: string[],
  opts: { root?: boolean } = {},
): string | undefined {
  const absent = names.filter((n) => tool(n) === undefined);
  if (absent.length > 0) {
    const packages = new Set(absent.map((n) => PACKAGE[n] ?? 'postfix'));
    return `${absent.join(', ')} not installed (apt-get install ${[...packages].join(' ')})`;
  }
  if (opts.root && process.getuid?.() !== 0) return 'a private Postfix instance needs root';
  return undefined;
}

/** Runs a peer program to its end; a non-zero exit is a result, not an error. */
export function runPeer(
  name: string,
  args: string[],
  opts: { timeoutMs?: number; input?: string } = {},
): Promise<PeerResult> {
  const child = spawn(tool(name) ?? name, args, { stdio: 'pipe' });
  child.stdin.end(opts.input ?? '');
  killOnExit(child);
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const ms = opts.timeoutMs;
  const timer = ms === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), ms);
  return new Promise((resolve, reject) => {
    child.once('error', (err) => (clearTimeout(timer), reject(err)));
    child.once('close', (code) => (clearTimeout(timer), resolve({ code, ...out })));
  });
}

/** Runs smtp-source; -d keeps each session for its next message. Non-zero on any odd reply. */
export function smtpSource(load: SourceLoad): Promise<PeerResult> {
  const counts = ['-s', `${load.sessions}`, '-m', `${load.messages}`, '-l', `${load.size}`, '-d'];
  const envelope = ['-f', load.from, '-t', load.to];
  const args = [...counts, ...envelope, `${load.host}:${load.port}`];
  return runPeer('smtp-source', args, { timeoutMs: load.timeoutMs });
}

/** smtp-sink with -c: accepts every message; its running counter is read from a pipe. */
export class SmtpSink {
  private messages = 0;
  private readonly waiters = new Set<{ n: number; resolve: (at: number) => void }>();

  private constructor(private readonly child: ChildProcess) {
    child.stdout!.on('data', (d: Buffer) => this.observe(d.toString()));
    child.stderr!.on('data', (d: Buffer) => process.stderr.write(`smtp-sink: ${d.toString()}`));
  }

  /** Starts smtp-sink on host:port and waits until it accepts connections. */
  static async start(host: string, port: number, opts: { backlog?: number } = {}) {
    // As root smtp-sink must drop privileges (-u).
    const user = process.getuid?.() === 0 ? ['-u', 'nobody'] : [];
    const args = [...user, '-c', `${host}:${port}`, `${opts.backlog ?? SINK_BACKLOG}`];
    const child = spawn(tool('smtp-sink') ?? 'smtp-sink', args, {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    killOnExit(child);
    const sink = new SmtpSink(child);
    try {
      await listening(host, port);
    } catch (err) {
      sink.stop();
      throw err;
    }
    return sink;
  }

  /** Messages received so far (the counter's last "mesg=" value). */
  get count(): number {
    return this.messages;
  }

  /** The performance.now() at which the counter reached n; rejects after timeoutMs. */
  reached(n: number, timeoutMs: number): Promise<number> {
    if (this.messages >= n) return Promise.resolve(performance.now());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`smtp-sink counted ${this.messages} of ${n} messages in ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = { n, resolve: (at: number) => (clearTimeout(timer), resolve(at)) };
      this.waiters.add(waiter);
    });
  }

  /** Stops the sink. */
  stop(): void {
    this.child.kill('SIGTERM');
  }

  /** Reads counter lines ("sess=1 quit=0 mesg=42", each ended by a bare CR). */
  private observe(text: string): void {
    const all = [...text.matchAll(/mesg=(\d+)/g)];
    const last = all[all.length - 1];
    if (!last) return;
    this.messages = Number(last[1]);
    const now = performance.now();
    for (const w of this.waiters) {
      if (this.messages < w.n) continue;
      this.waiters.delete(w);
      w.resolve(now);
    }
  }
}

/** Resolves once host:port accepts a TCP connection; rejects after LISTEN_WAIT_MS. */
async function listening(host: string, port: number): Promise<void> {
  const deadline = Date.now() + LISTEN_WAIT_MS;
  while (!(await accepts(host, port))) {
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port}`);
    await new Promise((r) => setTimeout(r, LISTEN_POLL_MS));
  }
}

/** True when a TCP connection to host:port succeeds (it is closed at once). */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port }, () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

/**
 * A private Postfix instance (root only): its own config, queue, data and mail directories under
 * one temp dir, smtpd on one address, a file log and no DNS. It is a receiving MX with
 * `mailboxes`, or a relay with params such as relayhost.
 */
export class PrivatePostfix {
  private constructor(readonly dir: string) {}

  /** Writes the configuration, runs `postfix check`, then `postfix start`. */
  static async start(opts: PostfixOptions): Promise<PrivatePostfix> {
    const pf = new PrivatePostfix(mkdtempSync(join(tmpdir(), 'gridpost-postfix-')));
    try {
      pf.layout(opts);
      const params = Object.entries(mainCf(pf.dir, opts)).map(([k, v]) => `${k}=${v}`);
      await pf.expect('postconf', ['-e', ...params]);
      await pf.expect('postfix', ['check']);
      installExitHook();
      postfixConfs.add(pf.conf);
      await pf.expect('postfix', ['start']);
      return pf;
    } catch (err) {
      await pf.stop();
      throw err;
    }
  }

  /** The instance's config directory (postfix -c). */
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

  /** True when `postqueue -p` says the queue is empty. */
  async queueEmpty(): Promise<boolean> {
    const res = await this.admin('postqueue', ['-p']);
    return /Mail queue is empty/.test(res.stdout + res.stderr);
  }

  /** `postfix stop` (abort when that fails), then removes the instance's files; idempotent. */
  async stop(): Promise<void> {
    if (postfixConfs.delete(this.conf)) {
      const res = await this.admin('postfix', ['stop']);
      if (res.code !== 0) await this.admin('postfix', ['abort']);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The directories (data belongs to mail_owner), master.cf, an empty main.cf, mailboxes. */
  private layout(opts: PostfixOptions): void {
    // Postfix daemons running as mail_owner must reach the queue inside our 0700 temp dir.
    chmodSync(this.dir, 0o755);
    for (const d of ['conf', 'queue', 'data']) mkdirSync(join(this.dir, d));
    chownSync(join(this.dir, 'data'), uidOf(POSTFIX_USER), 0);
    writeFileSync(join(this.conf, 'master.cf'), masterCf(opts.listen));
    writeFileSync(join(this.conf, 'main.cf'), '');
    if (opts.mailboxes) this.mailboxes(opts.mailboxes.domain, opts.mailboxes.users);
  }

  /** The maildir base, owned by MAILBOX_UID as virtual(8) writes there, and the mailbox table. */
  private mailboxes(domain: string, users: string[]): void {
    mkdirSync(join(this.dir, 'mail'));
    chownSync(join(this.dir, 'mail'), MAILBOX_UID, MAILBOX_UID);
    const table = users.map((u) => `${u}@${domain} ${domain}/${u}/\n`).join('');
    writeFileSync(join(this.conf, 'vmailbox'), table);
  }

  /** Runs a Postfix command that must succeed; quotes its output and the maillog's tail if not. */
  private async expect(name: string, args: string[]): Promise<void> {
    const res = await this.admin(name, args);
    if (res.code === 0) return;
    const log = readTail(join(this.dir, 'maillog'));
    const output = `${res.stdout}${res.stderr}`;
    throw new Error(`${name} ${args.join(' ')} failed (exit ${res.code}): ${output}\n${log}`);
  }

  /** Runs a Postfix administration command on this instance (-c <conf>). */
  private admin(name: string, args: string[]): Promise<PeerResult> {
    return runPeer(name, ['-c', this.conf, ...args], { timeoutMs: ADMIN_TIMEOUT_MS });
  }
}

/** The uid of a system user; Postfix's installation creates its mail_owner. */
function uidOf(user: string): number {
  const res = spawnSync('id', ['-u', user], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`no user ${user}: is Postfix installed?`);
  return Number(res.stdout.trim());
}

/** The last lines of a log file, to quote in an error. */
function readTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-10).join('\n');
  } catch {
    return '(no maillog yet)';
  }
}

/**
 * master.cf: smtpd on `listen` and the stock daemons of a relay and an MX; master(8) starts
 * each only when needed. None is chrooted: Debian's master.cf chroots most of them into the
 * queue directory, which in a private instance lacks the files they would need there
 * (resolv.conf, services, ...).
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

/** main.cf: the stock parameters, the mailbox domain's, then the caller's. */
function mainCf(dir: string, opts: PostfixOptions): Record<string, string> {
  const mailboxes = opts.mailboxes && mailboxParams(dir, opts.mailboxes.domain);
  return { ...stockParams(dir, opts.hostname), ...mailboxes, ...opts.params };
}

/** Its own directories, a file log, only localhost local, no DNS. */
function stockParams(dir: string, hostname: string): Record<string, string> {
  return {
    compatibility_level: '3.6',
    queue_directory: join(dir, 'queue'),
    data_directory: join(dir, 'data'),
    // No syslog here: log to a file, which must sit under one of these prefixes.
    maillog_file: join(dir, 'maillog'),
    maillog_file_prefixes: dir,
    myhostname: hostname,
    // A virtual mailbox domain must not also be in mydestination (Postfix warns about it).
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
  };
}

/** Delivery to maildirs under <dir>/mail for the users of the table <conf>/vmailbox. */
function mailboxParams(dir: string, domain: string): Record<string, string> {
  return {
    virtual_mailbox_domains: domain,
    virtual_mailbox_base: join(dir, 'mail'),
    virtual_mailbox_maps: `texthash:${join(dir, 'conf', 'vmailbox')}`,
    virtual_uid_maps: `static:${MAILBOX_UID}`,
    virtual_gid_maps: `static:${MAILBOX_UID}`,
  };
}
