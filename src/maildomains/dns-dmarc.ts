// The DMARC part of the DNS status: one v=DMARC1 record with a valid p= at _dmarc.<domain>,
// or else at _dmarc.<organisational domain> (RFC 7489 §6.6.3).
import type { DnsAsker } from './dns-query.js';
import { organisationalDomain, sameHost } from './dns-names.js';
import { errorRow, quoted, row, type RowBase } from './dns-row.js';
import { parseTagList } from '../signing/tag-list.js';
import type { DnsRecordStatus } from './dns-types.js';

// A first record to publish: monitoring only, so nothing is lost while reports come in.
const STARTER = 'v=DMARC1; p=none';

const POLICIES = new Set(['none', 'quarantine', 'reject']);

/** The TXT values at one _dmarc name, sorted by what receivers make of them. */
type Lookup =
  | { kind: 'error'; name: string; reason: string }
  | { kind: 'records'; name: string; valid: string[]; malformed: string[] };

/** Where a record applies from, and for which domain. */
interface Place {
  domain: string;
  returnPath: string;
  /** True when the record is the organisational domain's, applied to a subdomain. */
  inherited: boolean;
}

/** The DNS name of a domain's DMARC record. */
export function dmarcName(domain: string): string {
  return `_dmarc.${domain}`;
}

/** Checks the DMARC record that applies to domain, with SPF-alignment notes for returnPath. */
export async function checkDmarc(
  domain: string,
  returnPath: string,
  ask: DnsAsker,
): Promise<DnsRecordStatus> {
  const own = await lookup(dmarcName(domain), ask);
  const org = organisationalDomain(domain);
  const place: Place = { domain, returnPath, inherited: false };
  if (own.kind === 'error' || own.valid.length > 0 || own.malformed.length > 0 || org === domain) {
    return verdict(own, place, dmarcName(domain));
  }
  const inherited = await lookup(dmarcName(org), ask);
  return verdict(inherited, { ...place, inherited: true }, dmarcName(domain));
}

/** Looks up one _dmarc name; records not starting with v=DMARC1 but naming it are malformed. */
async function lookup(name: string, ask: DnsAsker): Promise<Lookup> {
  const answer = await ask.txt(name);
  if (answer.kind === 'error') return { kind: 'error', name, reason: answer.reason };
  const txt = answer.kind === 'found' ? answer.values : [];
  // RFC 7489 §6.4: v=DMARC1 must come first, its value exactly "DMARC1".
  const valid = txt.filter((t) => /^[vV]\s*=\s*DMARC1\s*(;|$)/.test(t));
  const malformed = txt.filter((t) => !valid.includes(t) && /v\s*=\s*dmarc1/i.test(t));
  return { kind: 'records', name, valid, malformed };
}

/** The row for what one lookup found; missingName is where a new record should go. */
function verdict(found: Lookup, place: Place, missingName: string): DnsRecordStatus {
  const base: RowBase = { kind: 'dmarc', name: found.name, expected: STARTER };
  if (found.kind === 'error') return errorRow(base, found.reason);
  if (found.valid.length > 1) return severalRow(base, found.valid);
  const record = found.valid[0];
  if (record !== undefined) return recordRow({ ...base, expected: record }, record, place);
  if (found.malformed.length > 0) return malformedRow(base, found.malformed);
  return missingRow({ ...base, name: missingName }, place);
}

/** No DMARC record for the domain, nor for its organisational domain. */
function missingRow(base: RowBase, place: Place): DnsRecordStatus {
  const org = organisationalDomain(place.domain);
  const where = org === place.domain ? '' : ` nor at ${dmarcName(org)}`;
  return row(base, 'missing', {
    found: [],
    detail: `No v=DMARC1 record at ${base.name}${where}, so receivers apply no DMARC policy.`,
    fix:
      `Publish TXT ${quoted(STARTER)} at ${base.name}; move to p=quarantine or p=reject ` +
      'once the aggregate reports show all your mail passing.',
  });
}

/** Several DMARC records: receivers ignore them all (RFC 7489 §6.6.3). */
function severalRow(base: RowBase, records: string[]): DnsRecordStatus {
  return row(base, 'wrong', {
    found: records,
    detail: `${records.length} v=DMARC1 records at ${base.name}; receivers then apply none.`,
    fix: `Keep one v=DMARC1 record at ${base.name} and delete the others.`,
  });
}

/** A record that names DMARC1 but does not start with v=DMARC1: receivers discard it. */
function malformedRow(base: RowBase, records: string[]): DnsRecordStatus {
  return row(base, 'wrong', {
    found: records,
    detail: 'The record does not start with v=DMARC1 (RFC 7489 §6.4), so receivers ignore it.',
    fix: `Rewrite the record at ${base.name} to start with "v=DMARC1;", e.g. ${quoted(STARTER)}.`,
  });
}

/** Judges the one DMARC record: its p= must be valid; the detail tells policy and alignment. */
function recordRow(base: RowBase, record: string, place: Place): DnsRecordStatus {
  const parsed = parseTagList(record);
  const tags = new Map(parsed.ok ? parsed.tags.map(([n, v]) => [n.toLowerCase(), v]) : []);
  const p = tags.get('p')?.toLowerCase();
  if (!parsed.ok || p === undefined || !POLICIES.has(p)) {
    const why = !parsed.ok ? parsed.error : p === undefined ? 'it has no p= tag' : `p=${p}`;
    const fixed = withPolicy(record, parsed.ok);
    return row({ ...base, expected: fixed }, 'wrong', {
      found: [record],
      detail: `The record has no valid policy (${why}); p= must be none, quarantine or reject.`,
      fix: `Replace the record at ${base.name} with ${quoted(fixed)}.`,
    });
  }
  return row(base, 'ok', { found: [record], detail: describePolicy(tags, p, place) });
}

/** The record with a valid p=none in place of a bad or missing policy. */
function withPolicy(record: string, parses: boolean): string {
  if (!parses) return STARTER;
  if (/(^|;)\s*p\s*=/i.test(record)) return record.replace(/(^|;)(\s*)p\s*=[^;]*/i, '$1$2p=none');
  return record.replace(/^(v\s*=\s*DMARC1)\s*;?/i, '$1; p=none;').replace(/;\s*$/, '');
}

/** "Policy p=reject; DKIM alignment relaxed (adkim=r); SPF alignment strict (aspf=s); ...". */
function describePolicy(tags: Map<string, string>, p: string, place: Place): string {
  const sp = tags.get('sp')?.toLowerCase();
  const applied = place.inherited && sp !== undefined && POLICIES.has(sp) ? `sp=${sp}` : `p=${p}`;
  const from = place.inherited
    ? ` from the organisational domain ${organisationalDomain(place.domain)}`
    : '';
  const parts = [`Policy ${applied}${from}`];
  const adkim = alignment(tags.get('adkim'));
  const aspf = alignment(tags.get('aspf'));
  parts.push(`DKIM alignment ${adkim.word} (adkim=${adkim.mode})`);
  parts.push(`SPF alignment ${aspf.word} (aspf=${aspf.mode})`);
  const pct = tags.get('pct');
  if (pct !== undefined && pct !== '100') parts.push(`applied to ${pct}% of failing mail (pct)`);
  if (!spfAligns(place, aspf.mode)) {
    parts.push(
      `SPF cannot align: the return path ${place.returnPath} is not ` +
        `${aspf.mode === 's' ? place.domain : `under ${organisationalDomain(place.domain)}`}, ` +
        'so DMARC passes only through DKIM',
    );
  }
  return `${parts.join('; ')}.`;
}

/** An alignment mode; anything but "s" is relaxed, the default (RFC 7489 §6.3). */
function alignment(value: string | undefined): { mode: 'r' | 's'; word: string } {
  return value?.toLowerCase() === 's'
    ? { mode: 's', word: 'strict' }
    : { mode: 'r', word: 'relaxed' };
}

/** True when SPF on the return-path domain can align with the From domain (RFC 7489 §3.1.2). */
function spfAligns(place: Place, mode: 'r' | 's'): boolean {
  if (mode === 's') return sameHost(place.returnPath, place.domain);
  return organisationalDomain(place.returnPath) === organisationalDomain(place.domain);
}
