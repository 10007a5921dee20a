/**
 * The compiled traffic policy: a validated document (plus the built-ins) turned into fast
 * lookups for the scheduler and the dispatcher: queues, sources, pools, which provider a set of
 * MX hosts belongs to, the layered settings of a ready queue, and the response rule a reply
 * matches. A Policy never changes; a new document makes a new Policy with a higher epoch, and
 * whoever cached settings compares epochs to pick the change up live.
 */
import { BASE_SETTINGS, BUILTINS } from './builtins.js';
import {
  policySchema,
  type BackoffSettings,
  type PolicyDoc,
  type PoolConfig,
  type QueueConfig,
  type ResponseRule,
  shapingRuleSchema,
  type ShapingRule,
  type SourceConfig,
} from './policy-schema.js';
import type { Rate } from './rate.js';
import { Classifier } from '../bounces/classifier.js';
import type { SmtpReply } from '../delivery/reply.js';

/** Every setting of a ready queue, resolved (durations in ms). */
export interface EffectiveSettings {
  maxConnections: number;
  maxMessagesPerConnection: number;
  maxRecipientsPerTransaction: number;
  messageRate: Rate | null;
  connectionRate: Rate | null;
  retry: number[] | null;
  connectTimeout: number;
  idleTimeout: number;
  tls: 'opportunistic' | 'required' | 'disabled';
  port: number;
  maxReady: number;
  /** The limits that replace these while a back-off action is active (unset ones stay). */
  backoff: BackoffSettings;
  /** Names of the rules that contributed, least specific first (for status and debugging). */
  rules: string[];
}

/** What the engine's start-up configuration contributes to the policy. */
export interface PolicyEnvironment {
  /** The destination port when no rule sets one (delivery.port). */
  port: number;
  /** The implicit source when the document defines none. */
  defaultSource: SourceConfig;
  /** The HELO name of sources that give none. */
  helo: string;
  connectTimeout: number;
}

/** A site as the policy sees it. */
export interface SiteRef {
  name: string;
  provider: string | null;
  /** The domains with shaping rules that belong to this site (rollup), or its one domain. */
  ruleDomains: string[];
}

/** A response rule with its name and compiled text pattern. */
export interface CompiledResponseRule extends ResponseRule {
  name: string;
  pattern: RegExp | null;
}

interface NamedRule extends ShapingRule {
  name: string;
}

/** The name of the pool and source used when the document defines none. */
export const DEFAULT_NAME = 'default';

let epochs = 0;

/** A compiled, immutable policy. */
export class Policy {
  readonly epoch = ++epochs;
  /** The document as stored (without the built-ins). */
  readonly doc: PolicyDoc;
  private readonly providerPatterns: { name: string; exact: Set<string>; suffixes: string[] }[];
  private readonly rules: NamedRule[];
  private readonly responses: CompiledResponseRule[];
  private readonly sourceMap: Map<string, SourceConfig & { helo: string }>;
  private readonly poolMap: Map<string, PoolConfig>;
  private readonly rollupDomains: string[];
  /** Bounce classification: the document's bounceRules, then the shipped rules. */
  readonly classifier: Classifier;

  constructor(
    doc: PolicyDoc,
    readonly env: PolicyEnvironment,
  ) {
    this.doc = doc;
    const builtins = doc.builtins ? policySchema.parse({ ...BUILTINS }) : null;
    const providers = { ...builtins?.providers, ...doc.providers };
    this.providerPatterns = Object.entries(providers).map(([name, p]) => ({
      name,
      exact: new Set(p.mx.filter((m) => !m.startsWith('*.')).map((m) => m.toLowerCase())),
      suffixes: p.mx.filter((m) => m.startsWith('*.')).map((m) => m.slice(1).toLowerCase()),
    }));
    const shaping = { ...builtins?.shaping, ...doc.shaping };
    this.rules = Object.entries(shaping).map(([name, r]) => ({ ...r, name }));
    const rollup = this.rules.filter((r) => r.domain && r.mxRollup !== false);
    this.rollupDomains = [...new Set(rollup.map((r) => r.domain!))];
    // The document's response rules are tried before the built-ins, in document order.
    const responses = [
      ...Object.entries(doc.responseRules),
      ...Object.entries(builtins?.responseRules ?? {}).filter(([n]) => !(n in doc.responseRules)),
    ];
    this.responses = responses.map(([name, r]) => ({
      ...r,
      name,
      pattern: r.text ? new RegExp(r.text, 'i') : null,
    }));
    this.sourceMap = new Map();
    const sources = Object.keys(doc.sources).length
      ? doc.sources
      : { [DEFAULT_NAME]: env.defaultSource };
    for (const [n, s] of Object.entries(sources)) {
      this.sourceMap.set(n, { ...s, helo: s.helo ?? env.helo });
    }
    this.classifier = new Classifier(
      Object.entries(doc.bounceRules).map(([name, r]) => ({ name, ...r })),
    );
    this.poolMap = new Map(Object.entries(doc.pools));
    if (!this.poolMap.has(DEFAULT_NAME)) {
      const all = Object.fromEntries([...this.sourceMap.keys()].map((n) => [n, 1]));
      this.poolMap.set(DEFAULT_NAME, { sources: all, rotateOnRetry: true });
    }
  }

  /** Queue settings by name; unknown names get the "default" queue's. */
  queue(name: string): QueueConfig {
    return this.doc.queues[name] ?? (this.doc.queues[DEFAULT_NAME] as QueueConfig);
  }

  /** Whether a queue of this name is defined. */
  hasQueue(name: string): boolean {
    return name in this.doc.queues;
  }

  queueNames(): string[] {
    return Object.keys(this.doc.queues);
  }

  source(name: string): (SourceConfig & { helo: string }) | undefined {
    return this.sourceMap.get(name);
  }

  sourceNames(): string[] {
    return [...this.sourceMap.keys()];
  }

  pool(name: string): PoolConfig | undefined {
    return this.poolMap.get(name);
  }

  /** The provider whose patterns match one of these MX host names, or null. */
  providerOf(mxHosts: string[]): string | null {
    for (const p of this.providerPatterns) {
      for (const raw of mxHosts) {
        const h = raw.toLowerCase().replace(/\.$/, '');
        if (p.exact.has(h) || p.suffixes.some((s) => h.endsWith(s))) return p.name;
      }
    }
    return null;
  }

  /** The domain rule that opts `domain` out of MX rollup, if any. */
  optsOutOfRollup(domain: string): boolean {
    return this.rules.some((r) => r.domain === domain && r.mxRollup === false);
  }

  /** Domains named by shaping rules that roll up into their site. */
  rollupRuleDomains(): readonly string[] {
    return this.rollupDomains;
  }

  /** The layered settings of the ready queue from `source` to `site`. */
  settings(source: string, site: SiteRef): EffectiveSettings {
    const out: EffectiveSettings = {
      maxConnections: 1,
      maxMessagesPerConnection: 1,
      maxRecipientsPerTransaction: 1,
      messageRate: null,
      connectionRate: null,
      retry: null,
      connectTimeout: this.env.connectTimeout,
      idleTimeout: 5000,
      tls: 'opportunistic',
      port: this.env.port,
      maxReady: 1,
      backoff: {},
      rules: [],
    };
    apply(out, BASE_RULE);
    const domains = new Set(site.ruleDomains);
    const tiers: ((r: NamedRule) => boolean)[] = [
      (r) => !r.provider && !r.domain && !r.source,
      (r) => !r.provider && !r.domain && r.source === source,
      (r) => !!r.provider && r.provider === site.provider && !r.source,
      (r) => !!r.provider && r.provider === site.provider && r.source === source,
      (r) => !!r.domain && domains.has(r.domain) && !r.source,
      (r) => !!r.domain && domains.has(r.domain) && r.source === source,
    ];
    for (const tier of tiers) for (const r of this.rules) if (tier(r)) apply(out, r);
    return out;
  }

  /** The first response rule that matches a remote reply at this destination, or null. */
  matchResponse(
    reply: SmtpReply,
    where: { provider: string | null; site: string; domain: string },
  ): CompiledResponseRule | null {
    for (const r of this.responses) {
      if (r.provider && r.provider !== where.provider) continue;
      if (r.site && r.site !== where.site) continue;
      if (r.domain && r.domain !== where.domain) continue;
      if (!codeMatches(r.code, reply.code)) continue;
      if (r.enhanced && !enhancedMatches(r.enhanced, reply.enhanced)) continue;
      if (r.pattern && !r.pattern.test(reply.text)) continue;
      return r;
    }
    return null;
  }
}

const BASE_RULE: NamedRule = { ...shapingRuleSchema.parse(BASE_SETTINGS), name: 'base' };

function apply(out: EffectiveSettings, r: NamedRule): void {
  const keys = [
    'maxConnections',
    'maxMessagesPerConnection',
    'maxRecipientsPerTransaction',
    'messageRate',
    'connectionRate',
    'retry',
    'connectTimeout',
    'idleTimeout',
    'tls',
    'port',
    'maxReady',
  ] as const;
  for (const k of keys) {
    if (r[k] !== undefined) (out as unknown as Record<string, unknown>)[k] = r[k];
  }
  if (r.backoff) out.backoff = { ...out.backoff, ...definedOnly(r.backoff) };
  out.rules.push(r.name);
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function codeMatches(want: number | string | undefined, code: number): boolean {
  if (want === undefined) return true;
  if (typeof want === 'number') return want === code;
  if (want.endsWith('xx')) return String(code)[0] === want[0];
  return Number(want) === code;
}

function enhancedMatches(want: string, got: string | null): boolean {
  if (!got) return false;
  const w = want.split('.');
  const g = got.split('.');
  return w.every((part, i) => part === '*' || part === g[i]);
}
