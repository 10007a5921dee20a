/**
 * The maildomains' live side: every dnsCheckInterval the engine looks up each maildomain's DNS
 * (and so finds the pending keys that are now published, which then sign), ends the grace of
 * replaced keys, and keeps the last DNS status of each maildomain for the API. One timer for
 * all of them; one check at a time, so a slow DNS server never piles up lookups.
 */
import type { Logger } from 'pino';
import type { DnsLookup } from '../delivery/dns.js';
import { checkDns } from './dns-status.js';
import type { DnsRecordStatus, DnsSourceExpectation } from './dns-types.js';
import type { Maildomains, MaildomainView } from './maildomains.js';
import { complianceReport, type ComplianceFacts, type ComplianceReport } from './compliance.js';

/** What DNS is checked against, from the engine's configuration and policy. */
export interface DnsContext {
  sources: DnsSourceExpectation[];
  bounceHost: string;
}

/** The DNS status of one maildomain, as last looked up. */
export interface DnsStatus {
  domain: string;
  checkedAt: string;
  /** ok when every record is; else the worst of error, missing, wrong. */
  status: 'ok' | 'wrong' | 'missing' | 'error';
  records: DnsRecordStatus[];
}

/** Runs the periodic DNS work and keeps its results. */
export class MaildomainWatch {
  private readonly last = new Map<string, DnsStatus>();
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  /** Aborts the lookups of a round under way when the engine stops. */
  private readonly abort = new AbortController();

  constructor(
    readonly domains: Maildomains,
    private readonly dns: DnsLookup,
    private readonly context: () => DnsContext,
    private readonly intervalMs: number,
    private readonly log: Logger,
    private readonly facts: (domain: string) => ComplianceFacts,
  ) {}

  /** Starts the periodic check (the first one soon after start). */
  start(): void {
    this.schedule(1_000);
  }

  /** Stops the timer and waits for a check under way. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.abort.abort();
    await this.running;
  }

  /** The DNS lookups of this engine (for key checks asked through the API). */
  get lookup(): DnsLookup {
    return this.dns;
  }

  /** Looks up one maildomain's DNS now, and keeps the result. */
  async check(domain: string): Promise<DnsStatus> {
    const md = this.domains.get(domain);
    const records = await checkDns(this.expectation(md), this.dns, { signal: this.abort.signal });
    const status: DnsStatus = {
      domain: md.domain,
      checkedAt: new Date().toISOString(),
      status: worst(records),
      records,
    };
    this.last.set(md.domain, status);
    return status;
  }

  /** The bulk-sender report of a maildomain, on DNS looked up now. */
  async compliance(domain: string): Promise<ComplianceReport> {
    const dns = await this.check(domain);
    return complianceReport(this.domains.get(domain), dns, this.facts(dns.domain));
  }

  /** The last DNS status of a maildomain, if it was looked up since start. */
  lastStatus(domain: string): DnsStatus | undefined {
    return this.last.get(domain.toLowerCase());
  }

  private expectation(md: MaildomainView) {
    const ctx = this.context();
    const keys = md.keys.map((k) => ({
      selector: k.selector,
      algorithm: k.algorithm,
      record: k.dns.value,
      state: k.state,
    }));
    return {
      domain: md.domain,
      ...(md.returnPathDomain ? { returnPathDomain: md.returnPathDomain } : {}),
      bounceHost: ctx.bounceHost,
      keys,
      sources: ctx.sources,
    };
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.round().finally(() => {
        this.running = null;
        this.schedule(this.intervalMs);
      });
    }, ms);
    this.timer.unref();
  }

  /** One round now: key states first (they change what signs), then each domain's records. */
  async tick(): Promise<void> {
    await this.round();
  }

  private async round(): Promise<void> {
    try {
      await this.domains.tick(this.dns);
      for (const md of this.domains.list()) {
        if (this.stopped) return;
        await this.check(md.domain);
      }
      for (const w of this.domains.certificateWarnings()) this.log.warn(w);
    } catch (err) {
      this.log.warn({ err }, 'maildomain DNS round failed; trying again next interval');
    }
  }
}

const RANK = { ok: 0, wrong: 1, missing: 2, error: 3 } as const;

/** The worst status among the records. */
function worst(records: DnsRecordStatus[]): DnsStatus['status'] {
  let w: DnsStatus['status'] = 'ok';
  for (const r of records) if (RANK[r.status] > RANK[w]) w = r.status;
  return w;
}
