/**
 * MX resolution (RFC 5321 §5.1): the mail hosts of a domain in the order to try them, or
 * why there are none (Null MX, NXDOMAIN, temporary DNS failure), with a small cache.
 */
import { domainToASCII } from 'node:url';
import type { DnsLookup } from './dns.js';
import { localReply, type SmtpReply } from './reply.js';

/** One mail host: addresses IPv4 first, then IPv6 when enabled. */
export interface MxHost {
  name: string;
  preference: number;
  addresses: string[];
}

/** Where mail for a domain goes, or the reply every recipient there gets. */
export type Route =
  /** Ascending preference, random among equals; implicit when from the domain's own A/AAAA. */
  | { kind: 'hosts'; hosts: MxHost[]; implicit: boolean }
  /** RFC 7505 Null MX: 556 5.1.10, bounce at once. */
  | { kind: 'nullmx'; reply: SmtpReply }
  /** 550 5.1.2: the domain does not exist, or has neither MX nor address records. */
  | { kind: 'nxdomain'; reply: SmtpReply }
  /** 451 4.4.3: DNS failed for now, or no MX host has an address right now. */
  | { kind: 'temporary'; reply: SmtpReply };

/** MxResolver tuning; clock and randomness are injectable for tests. */
export interface MxResolverOptions {
  /** How long a route with hosts is reused, in milliseconds. */
  cacheMs?: number;
  /** How long a Null MX or nonexistent domain is remembered, in milliseconds. */
  negativeCacheMs?: number;
  /** Also look up AAAA records (default false). */
  ipv6?: boolean;
  random?: () => number;
  now?: () => number;
}

// Limitation: node's Resolver does not expose record TTLs for MX, so cache lifetimes are
// fixed rather than the zone's. A minute is short enough to follow MX changes quickly and
// long enough to spare the DNS the per-message lookups of a busy queue. Milliseconds.
const DEFAULT_CACHE_MS = 60_000;
// Negative answers change rarely but matter when a domain is being set up: 30 s.
const DEFAULT_NEGATIVE_CACHE_MS = 30_000;
// Domains remembered at most; the oldest entry goes first. Bounds memory on a queue spread
// over very many domains (each entry is a few hundred bytes).
const MAX_CACHE_ENTRIES = 50_000;
// MX hosts resolved per domain, best preferences first. A delivery attempt rarely gets past
// the first few, and the cap bounds the DNS work a hostile zone with hundreds of MX can cause.
const MAX_MX_HOSTS = 10;

// node's codes for "the name has no such records" (as opposed to "DNS failed").
const NO_RECORDS = new Set(['ENODATA', 'ENOTFOUND']);

interface CacheEntry {
  route: Route;
  expiresAt: number;
}

/** The addresses of one name, and the DNS error code that kept some from us, if any. */
interface Addresses {
  addresses: string[];
  temporary: string | null;
}

/** Resolves domains to routes; concurrent calls for one domain share one lookup. */
export class MxResolver {
  readonly #dns: DnsLookup;
  readonly #cacheMs: number;
  readonly #negativeCacheMs: number;
  readonly #ipv6: boolean;
  readonly #random: () => number;
  readonly #now: () => number;
  readonly #cache = new Map<string, CacheEntry>();
  readonly #inflight = new Map<string, Promise<Route>>();

  constructor(dns: DnsLookup, opts: MxResolverOptions = {}) {
    this.#dns = dns;
    this.#cacheMs = opts.cacheMs ?? DEFAULT_CACHE_MS;
    this.#negativeCacheMs = opts.negativeCacheMs ?? DEFAULT_NEGATIVE_CACHE_MS;
    this.#ipv6 = opts.ipv6 ?? false;
    this.#random = opts.random ?? Math.random;
    this.#now = opts.now ?? Date.now;
  }

  /** The route for domain (case-insensitive); equal preferences are shuffled on every call. */
  async resolve(domain: string): Promise<Route> {
    const key = domainKey(domain);
    const cached = this.#fromCache(key);
    if (cached) return this.#shuffled(cached);
    let pending = this.#inflight.get(key);
    if (!pending) {
      pending = this.#lookup(key);
      this.#inflight.set(key, pending);
      const settled = pending;
      const done = (): void => {
        if (this.#inflight.get(key) === settled) this.#inflight.delete(key);
      };
      settled.then(done, done);
    }
    return this.#shuffled(await pending);
  }

  /** Drops the cached route of domain, or of every domain. */
  forget(domain?: string): void {
    if (domain === undefined) {
      this.#cache.clear();
      this.#inflight.clear();
      return;
    }
    const key = domainKey(domain);
    this.#cache.delete(key);
    this.#inflight.delete(key);
  }

  #fromCache(key: string): Route | undefined {
    const entry = this.#cache.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt > this.#now()) return entry.route;
    this.#cache.delete(key);
    return undefined;
  }

  async #lookup(key: string): Promise<Route> {
    const route = key === '' ? invalidDomain(key) : await this.#route(key);
    const ttl = route.kind === 'hosts' ? this.#cacheMs : this.#negativeCacheMs;
    if (route.kind !== 'temporary' && ttl > 0) this.#store(key, route, ttl);
    return route;
  }

  #store(key: string, route: Route, ttlMs: number): void {
    this.#cache.delete(key);
    if (this.#cache.size >= MAX_CACHE_ENTRIES) {
      const oldest = this.#cache.keys().next();
      if (!oldest.done) this.#cache.delete(oldest.value);
    }
    this.#cache.set(key, { route, expiresAt: this.#now() + ttlMs });
  }

  async #route(domain: string): Promise<Route> {
    if (domain.startsWith('[')) return invalidDomain(domain);
    let records: { exchange: string; priority: number }[];
    try {
      records = await this.#dns.resolveMx(domain);
    } catch (err) {
      return this.#mxFailed(domain, dnsErrorCode(err));
    }
    if (records.length === 0) return this.#implicit(domain);
    if (records.length === 1 && isRoot(records[0]?.exchange)) {
      // RFC 7505 §4.2: the domain declares it accepts no mail.
      return { kind: 'nullmx', reply: localReply(556, '5.1.10', 'Recipient address has null MX') };
    }
    return this.#hosts(domain, records);
  }

  #mxFailed(domain: string, code: string): Route | Promise<Route> {
    if (code === 'ENOTFOUND') {
      return {
        kind: 'nxdomain',
        reply: localReply(550, '5.1.2', `domain ${domain} does not exist`),
      };
    }
    if (code === 'ENODATA') return this.#implicit(domain);
    if (code === 'EBADNAME') return invalidDomain(domain);
    return temporary(`DNS temporary failure looking up MX of ${domain}: ${code}`);
  }

  /** RFC 5321 §5.1: no MX records means an implicit MX of preference 0: the domain itself. */
  async #implicit(domain: string): Promise<Route> {
    const found = await this.#addresses(domain);
    if (found.addresses.length > 0) {
      const hosts = [{ name: domain, preference: 0, addresses: found.addresses }];
      return { kind: 'hosts', hosts, implicit: true };
    }
    if (found.temporary) {
      return temporary(
        `DNS temporary failure looking up addresses of ${domain}: ${found.temporary}`,
      );
    }
    const text = `domain ${domain} has no MX and no address records`;
    return { kind: 'nxdomain', reply: localReply(550, '5.1.2', text) };
  }

  /** The MX hosts with their addresses; hosts without any are skipped. */
  async #hosts(domain: string, records: { exchange: string; priority: number }[]): Promise<Route> {
    const wanted = bestRecords(records);
    const found = await Promise.all(wanted.map((r) => this.#addresses(r.name)));
    const hosts = wanted
      .map((r, i) => ({ ...r, addresses: found[i]?.addresses ?? [] }))
      .filter((h) => h.addresses.length > 0);
    if (hosts.length > 0) return { kind: 'hosts', hosts, implicit: false };
    const failed = found.find((f) => f.temporary)?.temporary;
    if (failed)
      return temporary(`DNS temporary failure looking up MX hosts of ${domain}: ${failed}`);
    return temporary(`no MX host of ${domain} has an address`);
  }

  /** A and (optionally) AAAA of name; "no such records" is not an error. */
  async #addresses(name: string): Promise<Addresses> {
    const lookups = [this.#dns.resolve4(name)];
    if (this.#ipv6) lookups.push(this.#dns.resolve6(name));
    const settled = await Promise.allSettled(lookups);
    const out: Addresses = { addresses: [], temporary: null };
    for (const s of settled) {
      if (s.status === 'fulfilled') out.addresses.push(...s.value);
      else if (!NO_RECORDS.has(dnsErrorCode(s.reason))) out.temporary ??= dnsErrorCode(s.reason);
    }
    return out;
  }

  /** A copy of route with each run of equal preferences in a fresh random order. */
  #shuffled(route: Route): Route {
    if (route.kind !== 'hosts') return route;
    const hosts = route.hosts.map((h) => ({ ...h, addresses: [...h.addresses] }));
    for (let start = 0; start < hosts.length;) {
      let end = start + 1;
      while (end < hosts.length && hosts[end]?.preference === hosts[start]?.preference) end++;
      this.#shuffleRange(hosts, start, end);
      start = end;
    }
    return { kind: 'hosts', hosts, implicit: route.implicit };
  }

  /** Fisher-Yates over hosts[start, end). */
  #shuffleRange(hosts: MxHost[], start: number, end: number): void {
    for (let i = end - 1; i > start; i--) {
      const j = start + Math.floor(this.#random() * (i - start + 1));
      const a = hosts[i];
      const b = hosts[j];
      if (a && b) [hosts[i], hosts[j]] = [b, a];
    }
  }
}

/** Lower case, no trailing dot, IDNA A-labels (punycode) for non-ASCII names. */
function domainKey(domain: string): string {
  const trimmed = domain.trim().toLowerCase().replace(/\.$/, '');
  if (/^[\x00-\x7f]*$/.test(trimmed)) return trimmed;
  return domainToASCII(trimmed);
}

/** Sorted by preference, each name once (at its best preference), capped at MAX_MX_HOSTS. */
function bestRecords(
  records: { exchange: string; priority: number }[],
): Omit<MxHost, 'addresses'>[] {
  const best = new Map<string, number>();
  for (const r of records) {
    // A '.' among real MX records is a misconfigured Null MX (RFC 7505 §3): skip it.
    if (isRoot(r.exchange)) continue;
    const name = domainKey(r.exchange);
    best.set(name, Math.min(best.get(name) ?? Infinity, r.priority));
  }
  return [...best]
    .map(([name, preference]) => ({ name, preference }))
    .sort((a, b) => a.preference - b.preference)
    .slice(0, MAX_MX_HOSTS);
}

function isRoot(exchange: string | undefined): boolean {
  return exchange === '' || exchange === '.';
}

function temporary(text: string): Route {
  return { kind: 'temporary', reply: localReply(451, '4.4.3', text) };
}

// Limitation: domain literals (user@[192.0.2.1], RFC 5321 §4.1.3) are refused rather than
// delivered to the address; that also keeps a recipient from steering us to internal hosts.
function invalidDomain(domain: string): Route {
  const text = `"${domain}" is not a domain name that can be routed by MX`;
  return { kind: 'nxdomain', reply: localReply(550, '5.1.2', text) };
}

/** node's DNS error code; anything without one is a bug, not a DNS outcome. */
function dnsErrorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  throw err;
}
