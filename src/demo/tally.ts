/**
 * The demo's accounting: counts the run's records per destination domain as the engine
 * publishes them (the same records that go to the accounting files), with the replies behind
 * every deferral, bounce and expiration grouped into reasons.
 */
import { formatReply, type SmtpReply } from '../delivery/reply.js';
import type { StoredRecord } from '../records/types.js';
import { domainOf } from '../spool/spool.js';

/** The record types that carry a reason for not delivering. */
export type ReasonType = 'TransientFailure' | 'Bounce' | 'Expiration';

/** One reason, e.g. 550 5.1.1 at Bounce, and how many records gave it. */
export interface Reason {
  type: ReasonType;
  /** The reply with addresses and numbers masked, so that alike replies group together. */
  reply: string;
  count: number;
}

/** What happened to the recipients of one destination domain during the run. */
export interface DomainTally {
  domain: string;
  /** Recipients accepted at intake. */
  received: number;
  delivered: number;
  /** Deliveries made over STARTTLS. */
  deliveredTls: number;
  /** Deferrals: TransientFailure records, so one recipient deferred twice counts twice. */
  deferred: number;
  bounced: number;
  expired: number;
  /** Reasons, most frequent first. */
  reasons: Reason[];
  /** Response rules that matched replies here: name, action, how many replies. */
  rules: { name: string; action: string; count: number }[];
}

/** Counts records per destination domain. */
export class RunTally {
  private readonly domains = new Map<string, Counts>();

  /** Adds a batch of published records. */
  observe(records: readonly StoredRecord[]): void {
    for (const r of records) this.add(r);
  }

  /** The tally of one domain (all zero when nothing was seen). */
  domain(domain: string): DomainTally {
    const c = this.domains.get(domain) ?? new Counts();
    const reasons = [...c.reasons.values()].sort((a, b) => b.count - a.count);
    const rules = [...c.rules.values()].sort((a, b) => b.count - a.count);
    return { domain, ...c.totals, reasons, rules };
  }

  /** A recipient of `domain` delivered after at least one deferral, for an example trace. */
  retriedExample(domain: string): string | undefined {
    return this.domains.get(domain)?.retried;
  }

  private add(r: StoredRecord): void {
    if (r.type === 'Reception') {
      for (const { address } of r.recipients) this.counts(domainOf(address)).totals.received++;
    } else if (r.type === 'Delivery') {
      const c = this.counts(r.domain);
      c.totals.delivered++;
      if (r.tls) c.totals.deliveredTls++;
      if (r.attempt > 1) c.retried ??= r.recipient;
    } else if (r.type === 'TransientFailure') {
      this.counts(r.domain).fail('deferred', r.type, r.reply);
      if (r.rule) this.counts(r.domain).rule(r.rule);
    } else if (r.type === 'Bounce') {
      this.counts(r.domain).fail('bounced', r.type, r.reply);
    } else if (r.type === 'Expiration') {
      // The expiry reply is always the same; the last remote reply says why.
      this.counts(r.domain).fail('expired', r.type, r.lastReply ?? r.reply);
    }
    // Rejected records are refusals at intake: never queued, so no destination to count.
  }

  private counts(domain: string): Counts {
    let c = this.domains.get(domain);
    if (!c) {
      c = new Counts();
      this.domains.set(domain, c);
    }
    return c;
  }
}

/** The mutable counters behind one DomainTally. */
class Counts {
  readonly totals = {
    received: 0,
    delivered: 0,
    deliveredTls: 0,
    deferred: 0,
    bounced: 0,
    expired: 0,
  };
  readonly reasons = new Map<string, Reason>();
  readonly rules = new Map<string, { name: string; action: string; count: number }>();
  retried: string | undefined;

  /** Counts a reply that a response rule matched. */
  rule(r: { name: string; action: string }): void {
    const seen = this.rules.get(r.name) ?? { ...r, count: 0 };
    seen.count++;
    this.rules.set(r.name, seen);
  }

  /** Counts a deferral, bounce or expiration and the reply behind it. */
  fail(counter: 'deferred' | 'bounced' | 'expired', type: ReasonType, reply: SmtpReply): void {
    this.totals[counter]++;
    const text = maskReply(reply);
    const key = `${type} ${text}`;
    const found = this.reasons.get(key);
    if (found) found.count++;
    else this.reasons.set(key, { type, reply: text, count: 1 });
  }
}

/**
 * The reply as one line, with what differs between recipients masked: "<user7@x>" becomes
 * "<address>" and numbers in the text become "N" ("try again in N seconds").
 */
export function maskReply(reply: SmtpReply): string {
  const text = reply.text.replace(/<[^<>\s]*@[^<>\s]*>/g, '<address>').replace(/\b\d+\b/g, 'N');
  return formatReply({ ...reply, text });
}
