/**
 * Routing: the ordered next hops (name, IP, port) for a destination domain, from a static
 * route (a smarthost) or from MX resolution, or the reason there are none.
 */
import { isIP } from 'node:net';
import type { Config } from '../config/schema.js';
import type { DnsLookup } from './dns.js';
import type { MxResolver } from './mx.js';
import { localReply, type SmtpReply } from './reply.js';

/** One place to try: an MX (or smarthost) name, one of its addresses, and the port. */
export interface Hop {
  name: string;
  ip: string;
  port: number;
}

export type RoutePlan =
  | { kind: 'hops'; hops: Hop[]; static: boolean }
  | { kind: 'fail'; permanent: boolean; reply: SmtpReply };

/** Turns a destination domain into next hops. */
export class Router {
  private readonly statics = new Map<string, string[]>();

  constructor(
    private readonly delivery: Config['delivery'],
    private readonly mx: MxResolver,
    private readonly dns: DnsLookup,
  ) {
    for (const r of delivery.routes) this.statics.set(r.domain, r.hosts);
  }

  /**
   * The hops for `domain`, in the order to try them; MX hops get `port` (the shaping rule's
   * destination port, delivery.port by default).
   */
  async plan(domain: string, port = this.delivery.port): Promise<RoutePlan> {
    const fixed = this.statics.get(domain);
    if (fixed) return this.planStatic(fixed);
    const route = await this.mx.resolve(domain);
    if (route.kind !== 'hosts') {
      return { kind: 'fail', permanent: route.kind !== 'temporary', reply: route.reply };
    }
    const hops = route.hosts.flatMap((h) => h.addresses.map((ip) => ({ name: h.name, ip, port })));
    return { kind: 'hops', hops, static: false };
  }

  private async planStatic(hosts: string[]): Promise<RoutePlan> {
    const hops: Hop[] = [];
    for (const hostPort of hosts) {
      const cut = hostPort.lastIndexOf(':');
      const name = hostPort.slice(0, cut).replace(/^\[|\]$/g, '');
      const port = Number(hostPort.slice(cut + 1));
      const ips = isIP(name) ? [name] : await this.dns.resolve4(name).catch(() => []);
      for (const ip of ips) hops.push({ name, ip, port });
    }
    if (hops.length > 0) return { kind: 'hops', hops, static: true };
    const reply = localReply(
      451,
      '4.4.3',
      `static route hosts ${hosts.join(', ')} have no address`,
    );
    return { kind: 'fail', permanent: false, reply };
  }
}
