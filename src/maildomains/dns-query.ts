// DNS questions for the DNS status. Each answer is a value (records, none, or a temporary
// failure), never a throw, and every question of one check shares one deadline.
import type { DnsLookup } from '../delivery/dns.js';

/** What one DNS question gave: records, none (NXDOMAIN or no data), or a temporary failure. */
export type Answer<T> =
  | { kind: 'found'; values: T[] }
  | { kind: 'missing'; code: string; reason: string }
  | { kind: 'error'; code: string; reason: string };

// node:dns codes that mean "no such record", as opposed to "could not find out".
const NO_RECORD_CODES = new Set(['ENOTFOUND', 'ENODATA']);

// Words for the temporary failures an operator meets; other codes are shown bare.
const CODE_WORDS: Record<string, string> = {
  ESERVFAIL: 'server failure',
  ETIMEOUT: 'timeout',
  ECONNREFUSED: 'connection refused',
  EREFUSED: 'query refused',
  ENOTFOUND: 'no such name (NXDOMAIN)',
  ENODATA: 'no records of that type',
};

/** True when a node:dns error code means the record does not exist. */
export function isNoRecord(code: string): boolean {
  return NO_RECORD_CODES.has(code);
}

/** The error code of a rejected lookup ("EUNKNOWN" for errors without one). */
export function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'EUNKNOWN';
}

/** "server failure (ESERVFAIL) looking up TXT of example.com". */
export function describeFailure(code: string, type: string, name: string): string {
  const words = CODE_WORDS[code];
  return `${words ? `${words} (${code})` : code} looking up ${type} of ${name}`;
}

/** Rejects with code ETIMEOUT when the signal fires before the lookup settles. */
function bounded<T>(lookup: () => Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(deadlineError());
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(deadlineError());
    signal.addEventListener('abort', onAbort, { once: true });
    const settle = (): void => signal.removeEventListener('abort', onAbort);
    lookup().then(
      (value) => (settle(), resolve(value)),
      (err: unknown) => (settle(), reject(err as Error)),
    );
  });
}

function deadlineError(): Error {
  return Object.assign(new Error('no answer before the DNS status deadline'), { code: 'ETIMEOUT' });
}

/** Asks DNS questions through a DnsLookup, each bounded by one shared deadline. */
export class DnsAsker {
  /** The lookups themselves, bounded by the deadline, rejecting with node's codes. */
  readonly raw: DnsLookup;

  constructor(dns: DnsLookup, signal: AbortSignal) {
    const call = <T>(fn: () => Promise<T>): Promise<T> => bounded(fn, signal);
    this.raw = {
      resolveMx: (n) => call(() => dns.resolveMx(n)),
      resolve4: (n) => call(() => dns.resolve4(n)),
      resolve6: (n) => call(() => dns.resolve6(n)),
      resolveTxt: (n) => call(() => dns.resolveTxt(n)),
      reverse: (ip) => call(() => dns.reverse(ip)),
      resolveCname: (n) => call(() => dns.resolveCname(n)),
    };
  }

  /** TXT records, each with its strings joined (RFC 7208 §3.3, RFC 6376 §3.6.2.2). */
  async txt(name: string): Promise<Answer<string>> {
    const answer = await this.ask('TXT', name, () => this.raw.resolveTxt(name));
    if (answer.kind !== 'found') return answer;
    return { kind: 'found', values: answer.values.map((strings) => strings.join('')) };
  }

  /** MX records of a name. */
  mx(name: string): Promise<Answer<{ exchange: string; priority: number }>> {
    return this.ask('MX', name, () => this.raw.resolveMx(name));
  }

  /** A records (ipv6 false) or AAAA records (true) of a name. */
  addresses(name: string, ipv6: boolean): Promise<Answer<string>> {
    if (ipv6) return this.ask('AAAA', name, () => this.raw.resolve6(name));
    return this.ask('A', name, () => this.raw.resolve4(name));
  }

  /** The PTR names of an address. */
  ptr(ip: string): Promise<Answer<string>> {
    return this.ask('PTR', ip, () => this.raw.reverse(ip));
  }

  /** The CNAME target of a name. */
  cname(name: string): Promise<Answer<string>> {
    return this.ask('CNAME', name, () => this.raw.resolveCname(name));
  }

  /** Runs one lookup and turns its outcome into an Answer; an empty list counts as none. */
  private async ask<T>(type: string, name: string, lookup: () => Promise<T[]>): Promise<Answer<T>> {
    try {
      const values = await lookup();
      if (values.length > 0) return { kind: 'found', values };
      return { kind: 'missing', code: 'ENODATA', reason: describeFailure('ENODATA', type, name) };
    } catch (err) {
      const code = errorCode(err);
      const reason = describeFailure(code, type, name);
      return isNoRecord(code) ? { kind: 'missing', code, reason } : { kind: 'error', code, reason };
    }
  }
}
