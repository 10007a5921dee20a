/**
 * The DNS status of a maildomain: the records it needs (SPF covering the egress addresses,
 * one DKIM key record per selector, DMARC, the return-path MX or CNAME, the PTR of every
 * egress source), what is published, looked up live, and per record ok, missing, wrong or
 * error (a temporary DNS failure), with the fix.
 */
import { isIP } from 'node:net';
import type { DnsLookup } from '../delivery/dns.js';
import { GridpostError } from '../errors/catalogue.js';
import { checkDkim } from './dns-dkim.js';
import { checkDmarc } from './dns-dmarc.js';
import { hostKey } from './dns-names.js';
import { checkPtr } from './dns-ptr.js';
import { DnsAsker } from './dns-query.js';
import { checkReturnPath } from './dns-return-path.js';
import { checkSpf } from './dns-spf.js';
import { parseTagList } from '../signing/tag-list.js';
import type { DnsExpectation, DnsRecordStatus } from './dns-types.js';

export type {
  DnsCheckStatus,
  DnsExpectation,
  DnsKeyExpectation,
  DnsRecordKind,
  DnsRecordStatus,
  DnsSourceExpectation,
} from './dns-types.js';

// Deadline of one whole check, in milliseconds, shared by every lookup in it: room for a slow
// authoritative server and an SPF chain of ten lookups, short enough for a console page.
const DEFAULT_TIMEOUT_MS = 10_000;

// A host name: dot-separated labels of letters, digits, "-" and "_" (as in _domainkey).
const HOST_NAME =
  /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))+$/;
// A DKIM selector: one or more such labels (RFC 6376 §3.1).
const SELECTOR = /^[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*$/i;

/**
 * Looks up every record the maildomain needs, in parallel, and returns one status per record:
 * SPF, then DKIM per key, DMARC, the return path (when returnPathDomain is set), then PTR per
 * source. DNS failures come back as status "error", never as a throw; a malformed expectation
 * throws GridpostError E_VALIDATION naming the field.
 */
export async function checkDns(
  exp: DnsExpectation,
  dns: DnsLookup,
  opts: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<DnsRecordStatus[]> {
  const e = normalise(exp);
  const deadline = AbortSignal.timeout(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const signal = opts.signal ? AbortSignal.any([deadline, opts.signal]) : deadline;
  const ask = new DnsAsker(dns, signal);
  const returnPath = e.returnPathDomain ?? e.domain;
  return Promise.all([
    checkSpf(returnPath, e.sources, ask),
    ...e.keys.map((key) => checkDkim(e.domain, key, ask)),
    checkDmarc(e.domain, returnPath, ask),
    ...(e.returnPathDomain ? [checkReturnPath(e.returnPathDomain, e.bounceHost, ask)] : []),
    ...e.sources.map((source) => checkPtr(source, ask)),
  ]);
}

/** The expectation with host names in lower case without root dot; throws when malformed. */
function normalise(exp: DnsExpectation): DnsExpectation {
  const out: DnsExpectation = {
    ...exp,
    domain: host(exp.domain, 'domain'),
    keys: exp.keys.map((k, i) => ({ ...k, selector: selector(k.selector, `keys[${i}]`) })),
    sources: exp.sources.map((s, i) => ({
      ...s,
      address: address(s.address, `sources[${i}].address`),
      helo: machineName(s.helo, `sources[${i}].helo`),
    })),
  };
  if (exp.returnPathDomain !== undefined) {
    out.returnPathDomain = host(exp.returnPathDomain, 'returnPathDomain');
  }
  if (exp.bounceHost !== undefined) out.bounceHost = machineName(exp.bounceHost, 'bounceHost');
  exp.keys.forEach((k, i) => keyRecord(k.record, `keys[${i}].record`));
  return out;
}

/** A host name, normalised, or E_VALIDATION. */
function host(value: string, path: string): string {
  const key = hostKey(value);
  if (!HOST_NAME.test(key)) invalid(path, `"${value}" is not a host name like example.com`);
  return key;
}

/**
 * One of our own machine names (a HELO name, the bounce host): a host name, or a bare label
 * such as an unconfigured machine's "vm", which the PTR and MX checks then report as wrong
 * rather than making the whole status fail.
 */
function machineName(value: string, path: string): string {
  const key = hostKey(value);
  if (!SELECTOR.test(key)) invalid(path, `"${value}" is not a host name like example.com`);
  return key;
}

function selector(value: string, path: string): string {
  if (!SELECTOR.test(value)) invalid(`${path}.selector`, `"${value}" is not a DKIM selector`);
  return value.toLowerCase();
}

function address(value: string, path: string): string {
  if (isIP(value) === 0) invalid(path, `"${value}" is not an IPv4 or IPv6 address`);
  return value;
}

/** Our own key record must be a tag list with a non-empty p=, or comparing it means nothing. */
function keyRecord(value: string, path: string): void {
  const tags = parseTagList(value);
  if (!tags.ok) invalid(path, `"${value}" is not a DKIM key record: ${tags.error}`);
  else if (!tags.get('p')) invalid(path, 'the DKIM key record has no p= public key');
}

function invalid(path: string, why: string): never {
  throw new GridpostError('E_VALIDATION', `DNS expectation: ${path}: ${why}`, { path });
}
