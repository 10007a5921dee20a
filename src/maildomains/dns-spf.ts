// The SPF part of the DNS status: one v=spf1 record at the return-path domain, under which
// every egress address must get "pass" by the full check_host() of RFC 7208 §4.
//
// The evaluation is mailauth's (a dependency already, used for DKIM): it implements every
// mechanism and modifier with macros, CIDR lengths, the 10-lookup and 2-void-lookup limits
// (RFC 7208 §4.6.4) and takes a pluggable resolver, which we point at our DnsLookup.
import { spf } from 'mailauth/lib/spf/index.js';
import type { DnsAsker } from './dns-query.js';
import { describeFailure, errorCode, isNoRecord } from './dns-query.js';
import { addressOfReverseName } from './dns-names.js';
import { errorRow, quoted, row, type RowBase } from './dns-row.js';
import type { DnsRecordStatus, DnsSourceExpectation } from './dns-types.js';

// Receivers' limits on one evaluation (RFC 7208 §4.6.4); mailauth enforces them.
const MAX_LOOKUPS = 10;
const MAX_VOID_LOOKUPS = 2;

// The name mailauth puts before its comments; we strip it again.
const MTA = 'gridpost';

// The record built from no egress address at all.
const EMPTY_SPF = 'v=spf1 ~all';

/** The outcome of check_host() for one egress source. */
interface SourceResult {
  source: DnsSourceExpectation;
  /** pass, fail, softfail, neutral, none, permerror or temperror (RFC 7208 §2.6). */
  result: string;
  comment: string;
  lookups: number;
  voidLookups: number;
  /** The first temporary DNS failure seen during the evaluation, in our words. */
  dnsFailure?: string;
}

/** True for a TXT value that is an SPF record (RFC 7208 §4.5: "v=spf1" then space or end). */
export function isSpfRecord(txt: string): boolean {
  return /^v=spf1( |$)/i.test(txt);
}

/** The ip4:/ip6: mechanism that authorises exactly one address. */
export function mechanismFor(address: string): string {
  return address.includes(':') ? `ip6:${address}` : `ip4:${address}`;
}

/** Checks the SPF record of domain (the MAIL FROM domain) against every egress source. */
export async function checkSpf(
  domain: string,
  sources: DnsSourceExpectation[],
  ask: DnsAsker,
): Promise<DnsRecordStatus> {
  const fresh = ['v=spf1', ...sources.map((s) => mechanismFor(s.address)), '~all'].join(' ');
  // fresh is EMPTY_SPF when no egress source has a known address.
  const base: RowBase = { kind: 'spf', name: domain, expected: fresh };
  const answer = await ask.txt(domain);
  if (answer.kind === 'error') return errorRow(base, answer.reason);
  const all = answer.kind === 'found' ? answer.values : [];
  const records = all.filter(isSpfRecord);
  if (records.length === 0) return missingSpf(base, all.length, answer);
  if (records.length > 1) return severalSpf(base, records);
  const record = records[0] ?? '';
  const results = await Promise.all(sources.map((s) => evaluate(domain, s, ask)));
  return judge({ ...base, expected: record }, record, results);
}

/** No v=spf1 record at the name. */
function missingSpf(base: RowBase, otherTxt: number, answer: { kind: string }): DnsRecordStatus {
  const why =
    answer.kind === 'found'
      ? `none of the ${otherTxt} TXT records at ${base.name} starts with v=spf1`
      : `${base.name} has no TXT record`;
  const detail = `No SPF record: ${why}, so receivers get SPF "none" for mail from it.`;
  if (base.expected === EMPTY_SPF) {
    // No egress address is known: "v=spf1 ~all" would soft-fail every message we send.
    return row({ ...base, expected: 'v=spf1 ip4:EGRESS-ADDRESS ~all' }, 'missing', {
      found: [],
      detail,
      fix:
        `Publish TXT "v=spf1 ip4:A ~all" at ${base.name} with an ip4:/ip6: term for every ` +
        'address the engine sends from; give those addresses to the policy sources (or ' +
        'delivery.localAddress) and this check names them.',
    });
  }
  return row(base, 'missing', {
    found: [],
    detail,
    fix: `Publish TXT ${quoted(base.expected)} at ${base.name}.`,
  });
}

/** Several v=spf1 records: a permerror for every receiver (RFC 7208 §4.5). */
function severalSpf(base: RowBase, records: string[]): DnsRecordStatus {
  return row({ ...base, expected: 'one TXT record starting with v=spf1' }, 'wrong', {
    found: records,
    detail:
      `${records.length} TXT records at ${base.name} start with v=spf1; receivers then ` +
      'return permerror (RFC 7208 §4.5) and SPF fails for all mail.',
    fix: `Merge the ${records.length} v=spf1 records at ${base.name} into one; delete the others.`,
  });
}

/**
 * Runs check_host() for one source through mailauth, over our lookups.
 * Limitation: the sender is postmaster@<domain>, so a record whose macros use the local part
 * (%{l}, %{s}) is judged for that address only, not for each VERP return path we send with.
 */
async function evaluate(
  domain: string,
  source: DnsSourceExpectation,
  ask: DnsAsker,
): Promise<SourceResult> {
  const failures: string[] = [];
  const out = await spf({
    sender: `postmaster@${domain}`,
    ip: source.address,
    helo: source.helo,
    mta: MTA,
    maxResolveCount: MAX_LOOKUPS,
    maxVoidCount: MAX_VOID_LOOKUPS,
    resolver: spfResolver(ask, failures) as never,
  });
  const comment = String(out.status.comment ?? '').replace(`${MTA}: `, '');
  return {
    source,
    result: String(out.status.result),
    comment,
    lookups: out.lookups?.count ?? 0,
    voidLookups: out.lookups?.void ?? 0,
    dnsFailure: failures[0],
  };
}

/**
 * mailauth's resolver (name, rrtype) over our lookups. A temporary failure is tagged as an
 * SPF temperror, because mailauth 4.13.3 otherwise swallows a SERVFAIL met inside include: or
 * redirect= and goes on as if the included record did not match (RFC 7208 §5.2 wants
 * temperror); each failure is also noted for the status detail.
 */
function spfResolver(ask: DnsAsker, failures: string[]) {
  const dns = ask.raw;
  const byType: Record<string, (name: string) => Promise<unknown>> = {
    TXT: (n) => dns.resolveTxt(n),
    A: (n) => dns.resolve4(n),
    AAAA: (n) => dns.resolve6(n),
    MX: (n) => dns.resolveMx(n),
    PTR: (n) => dns.reverse(addressOfReverseName(n) ?? n),
  };
  return async (name: string, rrtype: string): Promise<unknown> => {
    const lookup = byType[rrtype];
    if (!lookup) throw new Error(`SPF asked for an unexpected record type ${rrtype}`);
    try {
      return await lookup(name);
    } catch (err) {
      const code = errorCode(err);
      if (isNoRecord(code)) throw err;
      const text = describeFailure(code, rrtype, name);
      failures.push(text);
      throw Object.assign(err as Error, { spfResult: { error: 'temperror', text } });
    }
  };
}

/** The verdict on one SPF record from the results of every source. */
function judge(base: RowBase, record: string, results: SourceResult[]): DnsRecordStatus {
  const found = [record];
  const broken = results.find((r) => r.result === 'permerror');
  if (broken) return permerrorRow(base, found, broken);
  const unsure = results.find((r) => r.result === 'temperror');
  if (unsure) return errorRow(base, unsure.dnsFailure ?? unsure.comment, found);
  const failing = results.filter((r) => r.result !== 'pass');
  if (failing.length === 0) {
    const names = results.map((r) => `${r.source.address} (${r.source.name})`).join(', ');
    const detail = results.length
      ? `Every egress address passes: ${names}.`
      : 'No egress sources to check; the record is published.';
    return row(base, 'ok', { found, detail });
  }
  return uncoveredRow(base, record, results, failing);
}

/** Some sources do not pass: name their results and the mechanisms to add. */
function uncoveredRow(
  base: RowBase,
  record: string,
  results: SourceResult[],
  failing: SourceResult[],
): DnsRecordStatus {
  const mechanisms = failing.map((r) => mechanismFor(r.source.address));
  const fixed = record.replace(/^v=spf1/i, `v=spf1 ${mechanisms.join(' ')}`);
  const got = failing.map((r) => `${r.source.address} (${r.source.name}) gets ${r.result}`);
  const passing = results.length - failing.length;
  return row({ ...base, expected: fixed }, 'wrong', {
    found: [record],
    detail: `${got.join(', ')}; ${passing} of ${results.length} egress addresses pass.`,
    fix: `Add ${mechanisms.join(' ')} to the SPF record at ${base.name}: ${quoted(fixed)}.`,
  });
}

/** A permanent error: too many lookups, too many void lookups, or a syntax error. */
function permerrorRow(base: RowBase, found: string[], r: SourceResult): DnsRecordStatus {
  return row(base, 'wrong', { found, ...permerrorWords(base.name, r) });
}

/** The detail and the fix of a permerror, by its cause. */
function permerrorWords(name: string, r: SourceResult): { detail: string; fix: string } {
  if (r.lookups > MAX_LOOKUPS) {
    return {
      detail:
        `Evaluating it for ${r.source.address} takes more than ${MAX_LOOKUPS} DNS lookups ` +
        '(RFC 7208 §4.6.4), so receivers return permerror and SPF fails.',
      fix:
        'Cut the terms that cost a lookup (include, a, mx, ptr, exists, redirect, counted ' +
        `through nested includes) to ${MAX_LOOKUPS} at most, e.g. by replacing includes ` +
        'with the ip4:/ip6: ranges they list.',
    };
  }
  if (r.voidLookups > MAX_VOID_LOOKUPS) {
    return {
      detail:
        `Evaluating it for ${r.source.address} meets more than ${MAX_VOID_LOOKUPS} names ` +
        'without records (RFC 7208 §4.6.4), so receivers return permerror.',
      fix: `Remove the include, a, mx or exists terms under ${name} that name nothing.`,
    };
  }
  return {
    detail: `Receivers return permerror for ${r.source.address}: ${r.comment}.`,
    fix: `Correct the SPF record at ${name} (or a record it includes): ${r.comment}.`,
  };
}
