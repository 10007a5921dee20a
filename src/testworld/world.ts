// The test world: one DNS server and scripted providers on loopback addresses, one SMTP port.
import { once } from 'node:events';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { TestDnsServer, reverseName } from './dns-server.js';
import { Receiver } from './receiver.js';
import type { ReceiverOptions } from './receiver.js';

/** Options of addProvider: a receiver's options, plus its MX name and address. */
export type ProviderOptions = Omit<ReceiverOptions, 'host' | 'port'> & {
  /** Default mx.<first domain>. */
  mxName?: string;
  /** Default the next free address from nextIp(). */
  ip?: string;
};

// Receivers live on 127.0.X.Y with X from 1: 127.0.0.1 stays free for the engine under test.
const FIRST_SUBNET = 1;
// Y runs 1..254, skipping .0 and .255 so no address looks like a network or broadcast address.
const HOSTS_PER_SUBNET = 254;
// The MX preference every provider gets; any value works while a domain has a single MX.
const MX_PRIORITY = 10;
// An address may already be taken on our port by another world in a parallel test process;
// we then move on to the next address, this many times at most.
const MAX_ADDRESS_ATTEMPTS = 10;

/** A small internet on loopback: DNS for the test domains and their receiving servers. */
export class TestWorld {
  /** Every receiver started by addProvider, in order. */
  readonly receivers: Receiver[] = [];
  private lastHost = 0;

  private constructor(
    readonly dns: TestDnsServer,
    readonly smtpPort: number,
  ) {}

  /** Starts the DNS server and picks the one TCP port that every receiver will listen on. */
  static async start(opts: { smtpPort?: number } = {}): Promise<TestWorld> {
    const dns = await TestDnsServer.start();
    try {
      return new TestWorld(dns, opts.smtpPort ?? (await freeTcpPort()));
    } catch (err) {
      await dns.stop();
      throw err;
    }
  }

  /** The next unused loopback address 127.0.1.N (then 127.0.2.N ...); nothing listens there. */
  nextIp(): string {
    const n = this.lastHost++;
    const subnet = FIRST_SUBNET + Math.floor(n / HOSTS_PER_SUBNET);
    if (subnet > 255) throw new Error('TestWorld: no loopback addresses left');
    return `127.0.${subnet}.${(n % HOSTS_PER_SUBNET) + 1}`;
  }

  /**
   * Starts a receiver on a fresh loopback address and points the domains at it:
   * MX 10 mx.<first domain> (or opts.mxName), whose A record is the receiver's address, and a
   * PTR from that address back to the MX name.
   */
  async addProvider(domains: string[], opts: ProviderOptions = {}): Promise<Receiver> {
    const first = domains[0];
    if (first === undefined) throw new Error('TestWorld.addProvider: give at least one domain');
    const { mxName = `mx.${first}`, ip, ...receiverOpts } = opts;
    const receiver = await this.startReceiver(ip, { hostname: mxName, ...receiverOpts });
    this.receivers.push(receiver);
    this.dns.merge(mxName, { a: [receiver.host] });
    this.dns.merge(reverseName(receiver.host), { ptr: [mxName] });
    for (const domain of domains) {
      this.dns.merge(domain, { mx: [{ exchange: mxName, priority: MX_PRIORITY }] });
    }
    return receiver;
  }

  /** Stops every receiver and the DNS server. */
  async stop(): Promise<void> {
    const receivers = this.receivers.splice(0);
    await Promise.all([...receivers.map((r) => r.stop()), this.dns.stop()]);
  }

  /** Starts a receiver on ip, or on the next address that is free on our port. */
  private async startReceiver(ip: string | undefined, opts: ProviderOptions): Promise<Receiver> {
    if (ip !== undefined) return Receiver.start({ ...opts, host: ip, port: this.smtpPort });
    for (let attempt = 1; ; attempt++) {
      try {
        return await Receiver.start({ ...opts, host: this.nextIp(), port: this.smtpPort });
      } catch (err) {
        if (!addressInUse(err) || attempt >= MAX_ADDRESS_ATTEMPTS) throw err;
      }
    }
  }
}

/** True when err (or its cause) is EADDRINUSE. */
function addressInUse(err: unknown): boolean {
  const cause = err instanceof Error ? err.cause : undefined;
  const code = (e: unknown) => (e as NodeJS.ErrnoException | undefined)?.code;
  return code(err) === 'EADDRINUSE' || code(cause) === 'EADDRINUSE';
}

/** A TCP port that is free right now on 127.0.0.1 (the probe listener is closed again). */
async function freeTcpPort(): Promise<number> {
  const probe = createServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as AddressInfo;
  probe.close();
  await once(probe, 'close');
  return port;
}
