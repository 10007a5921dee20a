/**
 * A maildomain against the bulk-sender requirements of Gmail and Yahoo (February 2024) and
 * Microsoft's consumer domains (May 2025): SPF, DKIM with keys of at least 1024 bits, DMARC
 * published and aligned, PTR that forward-confirms, TLS, one-click unsubscribe (RFC 8058) and a
 * complaint rate under 0.3 %. Each item says pass, warn or fail (or unknown when DNS could not
 * be read or nothing was sent yet), why, and what to do.
 */
import type { DnsStatus } from './watch.js';
import type { MaildomainView } from './maildomains.js';
import { organisationalDomain } from './dns-names.js';
import type { DnsRecordKind } from './dns-types.js';

export type Receiver = 'gmail' | 'yahoo' | 'microsoft';
const ALL: Receiver[] = ['gmail', 'yahoo', 'microsoft'];

/** One requirement and how the maildomain stands against it. */
export interface ComplianceItem {
  /** A stable name: spf, dkim, dmarc, alignment, ptr, tls, unsubscribe, complaints. */
  id: string;
  requirement: string;
  receivers: Receiver[];
  status: 'pass' | 'warn' | 'fail' | 'unknown';
  detail: string;
  fix?: string;
}

/** The report of one maildomain. */
export interface ComplianceReport {
  domain: string;
  /** True when no item fails (warnings and unknowns allowed). */
  compliant: boolean;
  dnsCheckedAt: string;
  items: ComplianceItem[];
}

/** What the engine does about TLS and unsubscribe links, and what its records say. */
export interface ComplianceFacts {
  /** Providers (google, yahoo, microsoft) whose shaping settings disable TLS. */
  tlsDisabledFor: string[];
  /** Whether intake refuses bulk mail without one-click unsubscribe, or adds the link itself. */
  unsubscribe: { enforced: boolean; added: boolean };
  /** Over the report's window (30 days): deliveries, those over TLS, user complaints. */
  usage: { delivered: number; deliveredTls: number; complaints: number };
}

// Gmail and Yahoo: keep the spam rate below 0.3 %, aim under 0.1 %.
const COMPLAINT_LIMIT = 0.003;
const COMPLAINT_TARGET = 0.001;
// RFC 8301 §3.2 and Gmail: at least 1024 bits; 2048 recommended.
const MIN_RSA_BITS = 1024;
const GOOD_RSA_BITS = 2048;

/** The report of a maildomain from its view, its last DNS status and the engine's facts. */
export function complianceReport(
  md: MaildomainView,
  dns: DnsStatus,
  facts: ComplianceFacts,
): ComplianceReport {
  const spf = dnsItem(dns, 'spf', 'SPF passes for every egress address of the return-path domain');
  const dkim = dkimItem(md, dns);
  const items = [
    spf,
    dkim,
    dnsItem(dns, 'dmarc', 'DMARC record published (p=none is enough)'),
    alignmentItem(md, spf, dkim),
    dnsItem(dns, 'ptr', 'PTR of every egress address names its HELO, which resolves back'),
    tlsItem(facts),
    unsubscribeItem(facts),
    complaintItem(facts),
  ];
  return {
    domain: md.domain,
    compliant: items.every((i) => i.status !== 'fail'),
    dnsCheckedAt: dns.checkedAt,
    items,
  };
}

/** An item that is the DNS records of one kind: fail when one is missing or wrong. */
function dnsItem(dns: DnsStatus, kind: DnsRecordKind, requirement: string): ComplianceItem {
  const records = dns.records.filter((r) => r.kind === kind);
  const bad = records.filter((r) => r.status === 'missing' || r.status === 'wrong');
  const erred = records.filter((r) => r.status === 'error');
  const base = { id: kind, requirement, receivers: ALL };
  if (records.length === 0) {
    return { ...base, status: 'unknown', detail: `nothing to check (no ${kind} records apply)` };
  }
  if (bad.length > 0) {
    const detail = bad.map((r) => `${r.name}: ${r.detail}`).join('; ');
    return { ...base, status: 'fail', detail, fix: bad.map((r) => r.fix).join(' ') };
  }
  if (erred.length > 0) {
    return { ...base, status: 'unknown', detail: erred.map((r) => r.detail).join('; ') };
  }
  return { ...base, status: 'pass', detail: records.map((r) => r.detail).join('; ') };
}

/** DKIM: an active key of at least 1024 bits (2048 recommended), published. */
function dkimItem(md: MaildomainView, dns: DnsStatus): ComplianceItem {
  const requirement = 'DKIM signature with a key of at least 1024 bits, published';
  const base = { id: 'dkim', requirement, receivers: ALL };
  const active = md.keys.filter((k) => k.state === 'active');
  if (md.signing.selectors.length === 0) {
    const fix = `gridpost keys generate ${md.domain} --selector s1; publish its record; check it`;
    return {
      ...base,
      status: 'fail',
      detail: 'no active domain key: mail is not DKIM-signed',
      fix,
    };
  }
  const weak = active.filter((k) => k.algorithm === 'rsa-sha256' && k.bits < MIN_RSA_BITS);
  if (weak.length > 0) {
    const detail = `keys under ${MIN_RSA_BITS} bits: ${weak.map((k) => k.selector).join(', ')}`;
    return { ...base, status: 'fail', detail, fix: 'Rotate to an RSA-2048 key.' };
  }
  const item = dnsItem(dns, 'dkim', requirement);
  if (item.status !== 'pass') return item;
  const short = active.filter((k) => k.algorithm === 'rsa-sha256' && k.bits < GOOD_RSA_BITS);
  if (short.length > 0) {
    const detail = `RSA-${short[0]!.bits} passes, but 2048 bits are recommended`;
    return { ...base, status: 'warn', detail, fix: 'Rotate to an RSA-2048 key.' };
  }
  return item;
}

/**
 * DMARC (RFC 7489 §4.2, relaxed alignment): a mechanism that passes for a domain sharing the
 * From's organisational domain: DKIM with d= of the maildomain's signing domain, or SPF at its
 * return-path domain. A domain that aligns counts only when its mechanism passes.
 */
function alignmentItem(
  md: MaildomainView,
  spf: ComplianceItem,
  dkim: ComplianceItem,
): ComplianceItem {
  const requirement = 'DMARC alignment: DKIM or SPF passes for a domain aligned with the From';
  const base = { id: 'alignment', requirement, receivers: ALL };
  const org = organisationalDomain(md.domain);
  const rp = md.returnPathDomain;
  const candidates = [
    {
      name: `DKIM d=${md.signing.domain}`,
      aligned: organisationalDomain(md.signing.domain) === org,
      item: dkim,
    },
    { name: `SPF on ${rp}`, aligned: rp !== null && organisationalDomain(rp) === org, item: spf },
  ].filter((c) => c.aligned);
  if (candidates.length === 0) {
    const detail = 'neither DKIM nor the return path aligns';
    const fix = `Sign with a key of ${md.domain} (or ${org}), or set returnPathDomain under ${org}`;
    return { ...base, status: 'fail', detail, fix: `${fix}.` };
  }
  const passing = candidates.filter((c) => c.item.status === 'pass' || c.item.status === 'warn');
  if (passing.length > 0) {
    return {
      ...base,
      status: 'pass',
      detail: `aligned by ${passing.map((c) => c.name).join(' and ')}`,
    };
  }
  const names = candidates.map((c) => c.name).join(' and ');
  const both = candidates.length > 1;
  if (candidates.some((c) => c.item.status === 'unknown')) {
    const detail = `${names} ${both ? 'align' : 'aligns'}; whether it passes is not known yet`;
    return { ...base, status: 'unknown', detail };
  }
  const ids = candidates.map((c) => c.item.id.toUpperCase()).join(' or ');
  return {
    ...base,
    status: 'fail',
    detail: `${names} ${both ? 'align but neither passes' : 'aligns but does not pass'}, so DMARC fails`,
    fix: `Fix the ${ids} item: DMARC passes once one aligned mechanism passes.`,
  };
}

function tlsItem(f: ComplianceFacts): ComplianceItem {
  const base = { id: 'tls', requirement: 'TLS for transmission', receivers: ALL };
  if (f.tlsDisabledFor.length > 0) {
    const detail = `shaping disables TLS towards ${f.tlsDisabledFor.join(', ')}`;
    return { ...base, status: 'fail', detail, fix: 'Set tls: opportunistic (or required) there.' };
  }
  const { delivered, deliveredTls } = f.usage;
  if (delivered === 0) {
    return {
      ...base,
      status: 'pass',
      detail: 'STARTTLS is used whenever offered (no deliveries yet)',
    };
  }
  const share = ((deliveredTls / delivered) * 100).toFixed(1);
  return {
    ...base,
    status: 'pass',
    detail: `${share} % of ${delivered} deliveries over TLS in 30 days`,
  };
}

function unsubscribeItem(f: ComplianceFacts): ComplianceItem {
  const requirement = 'One-click unsubscribe (RFC 8058) on bulk mail';
  const base = { id: 'unsubscribe', requirement, receivers: ALL };
  if (f.unsubscribe.enforced || f.unsubscribe.added) {
    const how = [
      f.unsubscribe.added ? 'added by the engine' : '',
      f.unsubscribe.enforced ? 'required at intake' : '',
    ];
    return { ...base, status: 'pass', detail: how.filter(Boolean).join(' and ') };
  }
  const fix =
    'Set checks.listUnsubscribe: refuse, or feedback.unsubscribeUrl (https) with listUnsubscribe: true on bulk queues.';
  return { ...base, status: 'warn', detail: 'bulk mail is neither checked nor given a link', fix };
}

function complaintItem(f: ComplianceFacts): ComplianceItem {
  const requirement = 'Complaint rate under 0.3 % (target 0.1 %)';
  const base = { id: 'complaints', requirement, receivers: ALL };
  const { delivered, complaints } = f.usage;
  if (delivered === 0) return { ...base, status: 'unknown', detail: 'no deliveries in 30 days' };
  const rate = complaints / delivered;
  const percent = (rate * 100).toFixed(3);
  const detail = `${complaints} complaints for ${delivered} deliveries in 30 days: ${percent} %`;
  if (rate >= COMPLAINT_LIMIT) {
    const fix =
      'Stop sending to complainers and unengaged addresses; check how addresses were collected.';
    return { ...base, status: 'fail', detail, fix };
  }
  if (rate >= COMPLAINT_TARGET) return { ...base, status: 'warn', detail };
  return { ...base, status: 'pass', detail };
}
