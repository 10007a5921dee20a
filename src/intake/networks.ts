/** Which client addresses may relay without authentication (smtp.allowedNetworks). */
import { BlockList, isIPv4, isIPv6 } from 'node:net';

/** A set of networks; `has(ip)` tells whether a client address is in one of them. */
export class NetworkSet {
  private readonly list = new BlockList();

  constructor(cidrs: string[]) {
    for (const cidr of cidrs) {
      const [net, bits] = cidr.split('/');
      const type = isIPv6(net ?? '') ? 'ipv6' : 'ipv4';
      this.list.addSubnet(net ?? '', Number(bits), type);
    }
  }

  /** True when `ip` is inside one of the networks (IPv4-mapped IPv6 counts as IPv4). */
  has(ip: string): boolean {
    const v4 = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
    if (isIPv4(v4)) return this.list.check(v4, 'ipv4');
    return isIPv6(ip) && this.list.check(ip, 'ipv6');
  }
}
