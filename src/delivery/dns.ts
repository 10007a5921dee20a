/**
 * The DNS lookups delivery needs, behind a small interface so tests and the engine can point
 * them at any server (the test world's, or GRIDPOST_DNS) without touching node's global
 * resolver. Errors keep node's codes (ENOTFOUND, ENODATA, ESERVFAIL, ETIMEOUT, ...), which
 * the MX resolver turns into outcomes.
 */
import { Resolver } from 'node:dns/promises';
import { isIPv4, isIPv6 } from 'node:net';

/** The lookups used by delivery; every method rejects with node's DNS error codes. */
export interface DnsLookup {
  resolveMx(name: string): Promise<{ exchange: string; priority: number }[]>;
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
  resolveTxt(name: string): Promise<string[][]>;
  reverse(ip: string): Promise<string[]>;
  /** The CNAME target of a name (ENODATA when the name has other records but no CNAME). */
  resolveCname(name: string): Promise<string[]>;
}

/** A configuration error in GRIDPOST_DNS, with a stable code for the CLI and start-up. */
export class DnsConfigError extends Error {
  readonly code = 'E_CONFIG_DNS';
}

const DNS_FORMAT =
  'expected HOST:PORT[,HOST:PORT...] with IP literals, IPv6 in brackets, ' +
  'e.g. GRIDPOST_DNS=127.0.0.1:5353,[::1]:53';

// The DNS port (RFC 1035 §4.2), used when an entry gives none.
const DNS_PORT = 53;

/**
 * Parses GRIDPOST_DNS ("HOST:PORT[,HOST:PORT...]", IPv6 as [::1]:53) into servers for
 * Resolver.setServers; throws DnsConfigError (code E_CONFIG_DNS) when malformed. A missing
 * port means 53.
 */
export function parseDnsServers(value: string): string[] {
  const entries = value.split(',').map((e) => e.trim());
  if (entries.some((e) => e === '')) throw badEntry(value, 'empty server entry');
  return entries.map((e) => parseServer(e, value));
}

function parseServer(entry: string, whole: string): string {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(entry);
  const host = m?.[1] ?? m?.[2];
  if (!m || host === undefined) throw badEntry(whole, `"${entry}" is not HOST:PORT`);
  if (m[1] !== undefined ? !isIPv6(host) : !isIPv4(host)) {
    throw badEntry(whole, `"${host}" is not an IPv4 address or a bracketed IPv6 address`);
  }
  const port = m[3] === undefined ? DNS_PORT : Number(m[3]);
  if (port < 1 || port > 65535) throw badEntry(whole, `port ${port} is out of range 1-65535`);
  return m[1] !== undefined ? `[${host}]:${port}` : `${host}:${port}`;
}

function badEntry(value: string, why: string): DnsConfigError {
  return new DnsConfigError(`GRIDPOST_DNS="${value}": ${why}; ${DNS_FORMAT}`);
}

/** The PTR name of an address: 7.2.0.192.in-addr.arpa, or nibbles under ip6.arpa (RFC 3596). */
export function ptrName(ip: string): string {
  if (isIPv4(ip)) return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
  if (!isIPv6(ip)) throw new TypeError(`ptrName: "${ip}" is not an IP address`);
  // The URL host parser gives the compressed lower-case form, an IPv4 tail folded into hex.
  const [head = '', tail] = new URL(`http://[${ip}]/`).hostname.slice(1, -1).split('::');
  const groups = (part: string): string[] => (part === '' ? [] : part.split(':'));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const zeros: string[] = Array(8 - left.length - right.length).fill('0');
  const hex = [...left, ...zeros, ...right].map((g) => g.padStart(4, '0')).join('');
  return `${hex.split('').reverse().join('.')}.ip6.arpa`;
}

// Per-try timeout when the caller gives none: well inside any delivery attempt, long enough
// for a slow authoritative server. Milliseconds.
const DEFAULT_TIMEOUT_MS = 5_000;
// Tries per server (c-ares retries on timeout); 2 survives one lost UDP packet.
const DEFAULT_TRIES = 2;

/** A DnsLookup on node:dns/promises Resolver, using the given servers or the system's. */
export function createDnsLookup(opts: {
  servers?: string[];
  timeoutMs?: number;
  tries?: number;
}): DnsLookup {
  const resolver = new Resolver({
    timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    tries: opts.tries ?? DEFAULT_TRIES,
  });
  if (opts.servers && opts.servers.length > 0) resolver.setServers(opts.servers);
  return {
    resolveMx: (name) => resolver.resolveMx(name),
    resolve4: (name) => resolver.resolve4(name),
    resolve6: (name) => resolver.resolve6(name),
    resolveTxt: (name) => resolver.resolveTxt(name),
    // A PTR query rather than resolver.reverse(): c-ares' gethostbyaddr reports every failure,
    // SERVFAIL and refused connections too, as ENOTFOUND, hiding temporary errors.
    reverse: async (ip) => resolver.resolvePtr(ptrName(ip)),
    resolveCname: (name) => resolver.resolveCname(name),
  };
}
