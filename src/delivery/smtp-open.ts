/**
 * Opening an SMTP session, as an explicit state machine with a small handler per state:
 *
 *   connect -> greeting -> ehlo (-> helo) -> starttls -> ehlo -> ready
 *
 * STARTTLS follows SessionOptions.tls. Every remote refusal, timeout, connection loss and TLS
 * failure comes back as an OpenFailure carrying an SmtpReply with an enhanced status code.
 */
import net from 'node:net';
import { localReply, type SmtpReply } from './reply.js';
import { SmtpSession, type Opening } from './smtp-session.js';
import type { OpenFailure, SessionOptions } from './smtp-types.js';
import { isFault, Wire, type WireFault } from './smtp-wire.js';

type OpenState = 'connect' | 'greeting' | 'ehlo' | 'helo' | 'starttls' | 'ready';
type OpenStep = OpenState | OpenFailure;

/** The outcome of openSession. */
export type OpenResult = { ok: true; session: SmtpSession } | ({ ok: false } & OpenFailure);

/** Opens a session: connect, greeting, EHLO or HELO, STARTTLS per opts.tls. */
export async function openSession(opts: SessionOptions): Promise<OpenResult> {
  const socket = net.connect({
    host: opts.ip,
    port: opts.port,
    localAddress: opts.localAddress,
    noDelay: true,
  });
  const wire = new Wire(socket, opts.signal);
  const o: Opening = { opts, wire, greeting: NO_GREETING, extensions: new Map(), tls: false };
  let step: OpenStep = 'connect';
  while (typeof step === 'string' && step !== 'ready') step = await OPEN_HANDLERS[step](o);
  if (typeof step !== 'string') {
    await wire.quit(opts.timeouts.quit);
    return { ok: false, ...step };
  }
  return { ok: true, session: new SmtpSession(o) };
}

const NO_GREETING = localReply(421, '4.4.2', 'no greeting yet');

const OPEN_HANDLERS: Record<Exclude<OpenState, 'ready'>, (o: Opening) => Promise<OpenStep>> = {
  connect: onConnect,
  greeting: onGreeting,
  ehlo: onEhlo,
  helo: onHelo,
  starttls: onStartTls,
};

async function onConnect(o: Opening): Promise<OpenStep> {
  const fault = await o.wire.waitFor(o.wire.socket, 'connect', o.opts.timeouts.connect);
  return fault ? openFault('connect', fault, o.opts) : 'greeting';
}

async function onGreeting(o: Opening): Promise<OpenStep> {
  const r = await o.wire.read(o.opts.timeouts.greeting);
  if (isFault(r)) return openFault('greeting', r, o.opts);
  o.greeting = r;
  return r.code === 220 ? 'ehlo' : { stage: 'greeting', reply: r };
}

async function onEhlo(o: Opening): Promise<OpenStep> {
  o.wire.write(`EHLO ${o.opts.helo}\r\n`);
  const r = await o.wire.read(o.opts.timeouts.ehlo);
  if (isFault(r)) return openFault('ehlo', r, o.opts);
  if (r.code === 250) {
    o.extensions = parseExtensions(r);
    return afterHello(o);
  }
  // RFC 5321 §4.1.4: a server that does not know EHLO answers 5xx; the client may use HELO.
  // After STARTTLS the server has already shown it knows EHLO (RFC 3207 §4.2 requires it).
  return r.code >= 500 && !o.tls ? 'helo' : { stage: 'ehlo', reply: r };
}

async function onHelo(o: Opening): Promise<OpenStep> {
  o.wire.write(`HELO ${o.opts.helo}\r\n`);
  const r = await o.wire.read(o.opts.timeouts.ehlo);
  if (isFault(r)) return openFault('ehlo', r, o.opts);
  if (r.code !== 250) return { stage: 'ehlo', reply: r };
  o.extensions = new Map();
  return afterHello(o);
}

function afterHello(o: Opening): OpenStep {
  const mode = o.opts.tls;
  if (o.tls || mode === 'disabled') return 'ready';
  if (o.extensions.has('STARTTLS')) return 'starttls';
  if (mode === 'opportunistic') return 'ready';
  const text = 'TLS is required but the server does not offer STARTTLS';
  return { stage: 'starttls', reply: localReply(421, '4.7.4', text) };
}

async function onStartTls(o: Opening): Promise<OpenStep> {
  o.wire.write('STARTTLS\r\n');
  const r = await o.wire.read(o.opts.timeouts.starttls);
  if (isFault(r)) return openFault('starttls', r, o.opts);
  if (r.code !== 220) return starttlsRefused(o, r);
  const sni = net.isIP(o.opts.mxHost) ? undefined : o.opts.mxHost;
  const fault = await o.wire.startTls(sni, o.opts.timeouts.starttls);
  if (fault) return openFault('starttls', fault, o.opts);
  o.tls = true;
  // RFC 3207 §4.2: forget what the server said before TLS and ask again.
  o.extensions = new Map();
  return 'ehlo';
}

function starttlsRefused(o: Opening, r: SmtpReply): OpenStep {
  // RFC 3207 §4: after a refused STARTTLS the client may go on in plaintext, which is what
  // opportunistic TLS means; a 421 closes the session anyway.
  if (o.opts.tls === 'opportunistic' && r.code !== 421) return 'ready';
  return { stage: 'starttls', reply: r };
}

const OPEN_WAITS: Record<OpenFailure['stage'], string> = {
  connect: 'connecting',
  greeting: 'waiting for the greeting',
  ehlo: 'waiting for the reply to EHLO/HELO',
  starttls: 'during STARTTLS',
};

/** The synthesized 421 for an opening stage that ended without a usable server reply. */
function openFault(stage: OpenFailure['stage'], f: WireFault, opts: SessionOptions): OpenFailure {
  const where = `${OPEN_WAITS[stage]} to ${opts.mxHost} [${opts.ip}]:${opts.port}`;
  const texts: Record<WireFault['cause'], string> = {
    timeout: `timeout ${where} (${f.message})`,
    closed: `connection lost ${where}`,
    socket: `connection error ${where}: ${f.message}`,
    protocol: `protocol error ${where}: ${f.message}`,
    aborted: `session aborted locally ${where}`,
  };
  // X.4.1 "no answer from host" while connecting; X.4.2 "bad connection" once connected.
  let enhanced = stage === 'connect' ? '4.4.1' : '4.4.2';
  if (f.cause === 'protocol') enhanced = '4.5.0';
  if (f.cause === 'aborted') enhanced = '4.3.0';
  return { stage, reply: localReply(421, enhanced, texts[f.cause]) };
}

/** EHLO keywords (upper case) to their parameters; the first line is the server's name. */
function parseExtensions(r: SmtpReply): Map<string, string> {
  const ext = new Map<string, string>();
  for (const line of r.text.split('\n').slice(1)) {
    const m = /^\s*([A-Za-z0-9][A-Za-z0-9-]*)(?:[ =](.*))?$/.exec(line);
    if (m?.[1]) ext.set(m[1].toUpperCase(), (m[2] ?? '').trim());
  }
  return ext;
}
