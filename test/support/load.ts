/**
 * Load of our own for crash tests: client sessions that inject one message after another into
 * an engine until told to stop or cut off, noting each recipient acknowledged with a 250.
 */
import { RFC5321_TIMEOUTS, openSession } from '../../src/delivery/smtp-client.js';
import { simpleMessage } from './harness.js';

/** Where the load goes and what it sends: client k sends to <prefix>c<k>-<i>@<domain>. */
export interface Load {
  /** The engine's SMTP port on 127.0.0.1. */
  port: number;
  sessions: number;
  /** Starts every local part, so that each round of a run has recipients of its own. */
  prefix: string;
  domain: string;
  from: string;
}

/** Set `now` to stop the clients after their current message. */
export interface Stop {
  now: boolean;
}

// A client waits this long (ms) for the engine's greeting and for its 250 after the dot; the
// engine answers in milliseconds, so only a dead engine makes a client wait this long.
const CLIENT_WAIT_MS = 5_000;

/** Runs load.sessions clients until stopped; resolves with every acknowledged recipient. */
export async function injectLoad(load: Load, stop: Stop): Promise<string[]> {
  const clients = Array.from({ length: load.sessions }, (_, k) =>
    injectUntil(load, `${load.prefix}c${k}`, stop),
  );
  return (await Promise.all(clients)).flat();
}

/** One client session sending one message after another until stopped or cut off. */
async function injectUntil(load: Load, client: string, stop: Stop): Promise<string[]> {
  const acked: string[] = [];
  const opened = await openSession({
    ip: '127.0.0.1',
    port: load.port,
    mxHost: 'engine',
    helo: `load.${load.domain}`,
    tls: 'disabled',
    timeouts: { ...RFC5321_TIMEOUTS, greeting: CLIENT_WAIT_MS, dataDone: CLIENT_WAIT_MS },
  });
  if (!opened.ok) return acked;
  for (let i = 0; !stop.now && opened.session.usable; i++) {
    const to = `${client}-${i}@${load.domain}`;
    const body = Buffer.from(simpleMessage(load.from, to, 'load', `message ${i}`));
    const res = await opened.session.send({ from: load.from, recipients: [to] }, body);
    if (res.data?.code === 250) acked.push(to);
  }
  opened.session.destroy();
  return acked;
}
