/**
 * The demo's small internet: a test world with five simulated providers on loopback addresses,
 * each showing one behaviour that real mailbox providers have. The world's DNS server answers
 * for the *.demo domains, so the demo needs no network beyond 127.0.0.0/8.
 */
import {
  accept,
  compose,
  greylist,
  mailboxFull,
  rateLimit421,
  TestWorld,
  unknownUsers,
  type ProviderOptions,
} from '../testworld/index.js';

/** One simulated provider: its domain, what it does, and how its recipients are named. */
export interface DemoProvider {
  domain: string;
  /** What the provider does, in a few words, for the summary. */
  behaviour: string;
  /** The recipient of the n-th message (from 0) sent to this provider. */
  recipient(n: number): string;
  /** Where its MX host listens, HOST:PORT on loopback. */
  mx: string;
}

/** The tunable behaviours; the defaults suit a few thousand messages. */
export interface DemoWorldOptions {
  /** busy.demo answers 421 to transactions beyond this many per second; default 50. */
  busyPerSecond?: number;
  /** greylist.demo refuses a new sender/recipient pair for this many seconds; default 2. */
  greylistSeconds?: number;
}

/** The running demo world and its providers, in the order the summary lists them. */
export interface DemoWorld {
  world: TestWorld;
  providers: DemoProvider[];
}

export const DEFAULT_BUSY_PER_SECOND = 50;
const DEFAULT_GREYLIST_SECONDS = 2;
// The receivers keep only the latest messages: the demo counts through records, and a long
// run with --messages 100000 should not hold every body in memory.
const RETAINED = 100;
// At strict.demo, one recipient in UNKNOWN_EVERY is unknown and one in FULL_EVERY has a full
// mailbox (10 % and 5 %), at fixed positions so that runs are comparable.
const UNKNOWN_EVERY = 10;
const FULL_EVERY = 20;

/** A provider to start, with the receiver options that give it its behaviour. */
type ProviderSpec = Omit<DemoProvider, 'mx'> & { options: ProviderOptions };

/** Starts the test world and its providers; stops what started if one fails. */
export async function startDemoWorld(opts: DemoWorldOptions = {}): Promise<DemoWorld> {
  const world = await TestWorld.start();
  try {
    const providers: DemoProvider[] = [];
    for (const { options, ...spec } of providerSpecs(opts)) {
      const rx = await world.addProvider([spec.domain], { retainMessages: RETAINED, ...options });
      providers.push({ ...spec, mx: `${rx.host}:${rx.port}` });
    }
    return { world, providers };
  } catch (err) {
    await world.stop();
    throw err;
  }
}

/** The five providers of the demo. */
function providerSpecs(opts: DemoWorldOptions): ProviderSpec[] {
  const busy = opts.busyPerSecond ?? DEFAULT_BUSY_PER_SECOND;
  const grey = opts.greylistSeconds ?? DEFAULT_GREYLIST_SECONDS;
  const startsWith = (prefix: string) => (address: string) =>
    address.toLowerCase().startsWith(prefix);
  return [
    {
      domain: 'inbox.demo',
      behaviour: 'accepts everything',
      options: { script: accept() },
      recipient: (n) => `user${n}@inbox.demo`,
    },
    {
      domain: 'greylist.demo',
      behaviour: `greylists new senders for ${grey} s`,
      options: { script: greylist(grey) },
      recipient: (n) => `user${n}@greylist.demo`,
    },
    {
      domain: 'strict.demo',
      behaviour: 'unknown users, full mailboxes',
      options: {
        script: compose(unknownUsers(startsWith('nobody')), mailboxFull(startsWith('full'))),
      },
      recipient: strictRecipient,
    },
    {
      domain: 'busy.demo',
      behaviour: `421 above ${busy} msg/s`,
      options: { script: rateLimit421(busy) },
      recipient: (n) => `user${n}@busy.demo`,
    },
    {
      domain: 'tls.demo',
      behaviour: 'accepts, offers STARTTLS',
      options: { script: accept(), starttls: true },
      recipient: (n) => `user${n}@tls.demo`,
    },
  ];
}

/** strict.demo's n-th recipient: unknown, with a full mailbox, or an ordinary user. */
function strictRecipient(n: number): string {
  if (n % UNKNOWN_EVERY === 0) return `nobody${n}@strict.demo`;
  if (n % FULL_EVERY === UNKNOWN_EVERY / 2) return `full${n}@strict.demo`;
  return `user${n}@strict.demo`;
}
