// Names and addresses as the DNS status compares them: host names without case or root dot,
// IP addresses in one canonical text form, the addresses of PTR names, organisational domains.
import { isIPv4, isIPv6 } from 'node:net';
import { getDomain } from 'tldts';

/** A host name for comparison: lower case, without the trailing root dot. */
export function hostKey(name: string): string {
  const lower = name.trim().toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** True when two host names are the same name. */
export function sameHost(a: string, b: string): boolean {
  return hostKey(a) === hostKey(b);
}

/**
 * An IP address in one text form, so "2001:DB8:0::7" equals "2001:db8::7". IPv6 goes through
 * the WHATWG URL host parser, which compresses zeros and lowers case (RFC 5952 style).
 */
export function canonicalIp(ip: string): string {
  if (isIPv4(ip)) return ip;
  if (!isIPv6(ip)) return ip;
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}

/** True when two texts are the same IP address. */
export function sameIp(a: string, b: string): boolean {
  return canonicalIp(a) === canonicalIp(b);
}

/** The address a PTR name stands for, or undefined when the name is not a full reverse name. */
export function addressOfReverseName(name: string): string | undefined {
  const key = hostKey(name);
  const v4 = /^((?:\d{1,3}\.){4})in-addr\.arpa$/.exec(key);
  if (v4?.[1]) {
    const ip = v4[1].slice(0, -1).split('.').reverse().join('.');
    return isIPv4(ip) ? ip : undefined;
  }
  const v6 = /^((?:[0-9a-f]\.){32})ip6\.arpa$/.exec(key);
  if (!v6?.[1]) return undefined;
  const hex = v6[1].replaceAll('.', '').split('').reverse().join('');
  return canonicalIp(hex.match(/.{4}/g)?.join(':') ?? '');
}

/**
 * The organisational domain (RFC 7489 §3.2) of a name: one label below its public suffix, by
 * the Public Suffix List that tldts carries (its ICANN and private sections, as mailauth's
 * DMARC check reads it), so example.co.uk for mail.example.co.uk. A name that is itself a
 * public suffix, or has one label, is its own organisational domain. Unknown top-level
 * domains (.test) count as one-label suffixes.
 */
export function organisationalDomain(name: string): string {
  const host = hostKey(name);
  return getDomain(host, { allowPrivateDomains: true }) ?? host;
}
