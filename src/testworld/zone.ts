// The test world's DNS zone: a table of names and their records, and the answers built from it.
import { isIPv4, isIPv6 } from 'node:net';
import { Packet } from 'dns2';
import type { Resource } from 'dns2';

/** The records of one name in the test zone. An absent kind means "no records of that type". */
export interface ZoneRecords {
  /** Exchange '' with priority 0 is a Null MX (RFC 7505): the domain accepts no mail. */
  mx?: { exchange: string; priority: number }[];
  a?: string[];
  aaaa?: string[];
  /** Each value is one TXT record; values over 255 bytes are split into several strings. */
  txt?: string[];
  ptr?: string[];
  cname?: string;
  /** Answer SERVFAIL for every type (a temporary DNS error). */
  servfail?: boolean;
  /** Answer this many milliseconds late (to test DNS timeouts). */
  delayMs?: number;
  /** TTL of every record of this name, in seconds; 0 (the default) so nobody caches test data. */
  ttl?: number;
}

/** One answer to one question: the response code, the records, and how late to send it. */
export interface ZoneAnswer {
  rcode: number;
  records: Resource[];
  delayMs: number;
}

// RFC 1035 §3.3.14: a TXT character-string carries at most 255 bytes after its length byte.
const MAX_TXT_STRING_BYTES = 255;

// A CNAME chain longer than this is a loop or a mistake in the test; real resolvers stop at
// a similar depth (BIND follows 16 hops).
const MAX_CNAME_HOPS = 16;

const { TYPE, CLASS } = Packet;

/** DNS response codes we answer with (RFC 1035 §4.1.1); dns2's typings do not declare them. */
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3 } as const;

/** Normalises a name for lookup: lower case, without the trailing root dot. */
export function zoneKey(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** The PTR name of an IP address: 4.3.2.1.in-addr.arpa, or the nibble form under ip6.arpa. */
export function reverseName(ip: string): string {
  if (isIPv4(ip)) return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
  if (!isIPv6(ip)) throw new Error(`reverseName: "${ip}" is not an IP address`);
  const nibbles = expandIpv6(ip).split('');
  return `${nibbles.reverse().join('.')}.ip6.arpa`;
}

/** The 32 hex digits of an IPv6 address. */
function expandIpv6(ip: string): string {
  // Limitation: an embedded IPv4 tail (::ffff:1.2.3.4) is refused rather than expanded; test
  // worlds use plain IPv4 or IPv6 addresses.
  if (ip.includes('.')) throw new Error(`reverseName: "${ip}" has an IPv4 tail; not supported`);
  const [head = '', tail] = ip.split('::');
  const groups = (part: string): string[] => (part === '' ? [] : part.split(':'));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const zeros: string[] = Array(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((g) => g.padStart(4, '0')).join('');
}

/** A name -> records table with case-insensitive names, answering DNS questions. */
export class Zone {
  private readonly names = new Map<string, ZoneRecords>();

  /** Replaces every record of a name. */
  set(name: string, records: ZoneRecords): void {
    this.names.set(zoneKey(name), { ...records });
  }

  /** Replaces only the record kinds (and flags) given, keeping the name's other records. */
  merge(name: string, records: ZoneRecords): void {
    const key = zoneKey(name);
    const defined = Object.entries(records).filter(([, v]) => v !== undefined);
    this.names.set(key, { ...this.names.get(key), ...Object.fromEntries(defined) });
  }

  /** Removes a name: it answers NXDOMAIN afterwards. */
  remove(name: string): void {
    this.names.delete(zoneKey(name));
  }

  /** The records of a name, or undefined when the name is not in the zone. */
  get(name: string): ZoneRecords | undefined {
    return this.names.get(zoneKey(name));
  }

  /** Answers a question, following CNAMEs inside the zone. */
  answer(name: string, type: number): ZoneAnswer {
    const delayMs = this.get(name)?.delayMs ?? 0;
    const records: Resource[] = [];
    let owner = name;
    for (let hop = 0; hop < MAX_CNAME_HOPS; hop++) {
      const found = this.get(owner);
      if (!found) return { rcode: RCODE.NXDOMAIN, records, delayMs };
      if (found.servfail) return { rcode: RCODE.SERVFAIL, records: [], delayMs };
      if (found.cname === undefined || type === TYPE.CNAME) {
        records.push(...recordsOf(owner, found, type));
        return { rcode: RCODE.NOERROR, records, delayMs };
      }
      records.push(resource(owner, found, TYPE.CNAME, { domain: found.cname }));
      owner = found.cname;
    }
    return { rcode: RCODE.SERVFAIL, records: [], delayMs };
  }
}

/** The records of one type (or of every type for ANY) that a name holds. */
function recordsOf(owner: string, r: ZoneRecords, type: number): Resource[] {
  const make = (t: number, fields: Partial<Resource>): Resource => resource(owner, r, t, fields);
  const byType: [number, () => Resource[]][] = [
    [TYPE.A, () => (r.a ?? []).map((address) => make(TYPE.A, { address }))],
    [TYPE.AAAA, () => (r.aaaa ?? []).map((address) => make(TYPE.AAAA, { address }))],
    [TYPE.MX, () => (r.mx ?? []).map((mx) => make(TYPE.MX, { ...mx }))],
    [TYPE.TXT, () => (r.txt ?? []).map((t) => make(TYPE.TXT, { data: txtStrings(t) }))],
    [TYPE.PTR, () => (r.ptr ?? []).map((domain) => make(TYPE.PTR, { domain }))],
    [TYPE.CNAME, () => (r.cname === undefined ? [] : [make(TYPE.CNAME, { domain: r.cname })])],
  ];
  return byType.filter(([t]) => type === TYPE.ANY || t === type).flatMap(([, build]) => build());
}

/** A resource record of the zone, class IN, with the name's TTL. */
function resource(owner: string, r: ZoneRecords, type: number, fields: Partial<Resource>) {
  return new Packet.Resource({ name: owner, type, class: CLASS.IN, ttl: r.ttl ?? 0, ...fields });
}

/** Splits a TXT value into strings of at most 255 bytes, never inside a UTF-8 character. */
export function txtStrings(value: string): string[] {
  if (Buffer.byteLength(value) === value.length) return chunkAscii(value);
  const out: string[] = [];
  let current = '';
  let bytes = 0;
  for (const ch of value) {
    const size = Buffer.byteLength(ch);
    if (bytes + size > MAX_TXT_STRING_BYTES) {
      out.push(current);
      current = '';
      bytes = 0;
    }
    current += ch;
    bytes += size;
  }
  out.push(current);
  return out;
}

/** Fast path of txtStrings for one-byte text: fixed slices. */
function chunkAscii(value: string): string[] {
  if (value.length <= MAX_TXT_STRING_BYTES) return [value];
  const out: string[] = [];
  for (let i = 0; i < value.length; i += MAX_TXT_STRING_BYTES) {
    out.push(value.slice(i, i + MAX_TXT_STRING_BYTES));
  }
  return out;
}
