/**
 * Sites (MX rollup): the destination domains whose mail goes to the same set of MX hosts share
 * one site, and so one set of ready queues and limits. Every domain hosted by one provider
 * then counts against the same connection and rate limits, which is how the receiver counts
 * too. A domain whose own shaping rule says `mxRollup: false` is a site by itself; a domain
 * with a static route is a site of its route's hosts.
 *
 * The site of a domain is learned from its route (MX lookup, cached by the resolver) and kept
 * for the DNS cache time. Shaping rules written for a domain apply to the site that domain
 * belongs to, so the resolver also learns the sites of the rule domains.
 */
import type { Policy } from '../shaping/policy.js';
import type { SmtpReply } from './reply.js';
import type { Hop, Router } from './route.js';

/** A site: its name (from its MX host names), provider, and a domain to route it by. */
export interface Site {
  name: string;
  provider: string | null;
  /** The first domain seen for this site; its route gives the site's hops. */
  domain: string;
  mxHosts: string[];
}

/** What a domain resolves to. */
export type SiteLookup =
  { kind: 'site'; site: Site } | { kind: 'fail'; permanent: boolean; reply: SmtpReply };

interface Entry {
  lookup: SiteLookup;
  expiresAt: number;
}

// Domains remembered at most; the oldest goes first. About 200 bytes each.
// Limitation: the domains of a site are learned from the recipients routed to it (at most 500
// kept per site, for status and operator actions by site), so right after a restart an
// operator action by site reaches only the recipients last tried there and those of domains
// routed since.
const MAX_DOMAINS = 100_000;

/** Resolves destination domains to sites. */
export class SiteResolver {
  private readonly byDomain = new Map<string, Entry>();
  private readonly sites = new Map<string, Site>();
  private readonly inflight = new Map<string, Promise<SiteLookup>>();
  /** Rule domain -> the site it belongs to (for shaping rules written per domain). */
  private readonly ruleSites = new Map<string, string>();
  /** Domains seen per site, a few, for status and operator actions. */
  private readonly domainsOf = new Map<string, Set<string>>();
  /** Bumped whenever a rule domain's site changes, so cached settings are recomputed. */
  version = 0;

  constructor(
    private readonly router: Router,
    private readonly policy: () => Policy,
    private readonly opts: { cacheMs: number; failureHoldMs: number; now?: () => number },
  ) {}

  private get now(): number {
    return (this.opts.now ?? Date.now)();
  }

  /** The cached lookup of a domain, if fresh. */
  cached(domain: string): SiteLookup | undefined {
    const e = this.byDomain.get(domain);
    if (!e) return undefined;
    if (e.expiresAt > this.now) return e.lookup;
    this.byDomain.delete(domain);
    return undefined;
  }

  /** Resolves a domain to its site; concurrent calls share one lookup. */
  resolve(domain: string): Promise<SiteLookup> {
    const hit = this.cached(domain);
    if (hit) return Promise.resolve(hit);
    let p = this.inflight.get(domain);
    if (!p) {
      p = this.lookup(domain).finally(() => this.inflight.delete(domain));
      this.inflight.set(domain, p);
    }
    return p;
  }

  /** Learns the sites of the domains that shaping rules name (after a policy change). */
  learnRuleDomains(): void {
    for (const d of this.policy().rollupRuleDomains()) void this.resolve(d);
  }

  /** The domains of shaping rules that belong to `site`, and the site's own if it is one. */
  ruleDomains(site: string): string[] {
    const out: string[] = [];
    for (const [d, s] of this.ruleSites) if (s === site) out.push(d);
    if (site.startsWith('domain:')) out.push(site.slice('domain:'.length));
    return out;
  }

  /** The domains seen for a site (a sample of at most a few hundred). */
  domains(site: string): string[] {
    return [...(this.domainsOf.get(site) ?? [])];
  }

  /** Every site seen. */
  allSites(): Site[] {
    return [...this.sites.values()];
  }

  private async lookup(domain: string): Promise<SiteLookup> {
    const plan = await this.router.plan(domain);
    const policy = this.policy();
    let lookup: SiteLookup;
    let ttl = this.opts.cacheMs;
    if (plan.kind === 'fail') {
      lookup = { kind: 'fail', permanent: plan.permanent, reply: plan.reply };
      // A temporary failure is remembered for the hold time, so that a broken zone is not
      // asked again for every recipient; a permanent one is cached by the MX resolver.
      ttl = plan.permanent ? 0 : this.opts.failureHoldMs;
    } else {
      const mxHosts = [...new Set(plan.hops.map((h: Hop) => h.name.toLowerCase()))].sort();
      const name = policy.optsOutOfRollup(domain)
        ? `domain:${domain}`
        : plan.static
          ? `route:${mxHosts.join(',')}`
          : mxHosts.join(',');
      const site = this.sites.get(name) ?? {
        name,
        provider: policy.providerOf(mxHosts),
        domain,
        mxHosts,
      };
      this.sites.set(name, site);
      this.noteDomain(name, domain, policy);
      lookup = { kind: 'site', site };
    }
    if (ttl > 0) this.remember(domain, lookup, ttl);
    return lookup;
  }

  private noteDomain(site: string, domain: string, policy: Policy): void {
    let seen = this.domainsOf.get(site);
    if (!seen) this.domainsOf.set(site, (seen = new Set()));
    if (seen.size < 500) seen.add(domain);
    if (policy.rollupRuleDomains().includes(domain) && this.ruleSites.get(domain) !== site) {
      this.ruleSites.set(domain, site);
      this.version++;
    }
  }

  private remember(domain: string, lookup: SiteLookup, ttl: number): void {
    if (this.byDomain.size >= MAX_DOMAINS) {
      const oldest = this.byDomain.keys().next().value;
      if (oldest !== undefined) this.byDomain.delete(oldest);
    }
    this.byDomain.set(domain, { lookup, expiresAt: this.now + ttl });
  }
}
