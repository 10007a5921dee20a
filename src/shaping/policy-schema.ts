/**
 * The traffic policy document: queues, egress sources and pools, providers, shaping rules and
 * response rules. It lives in the engine's store, is edited through the API and the CLI, and is
 * exported and applied as one YAML (or JSON) file. docs/policy.md shows a complete example.
 *
 * Every section is a map keyed by name, so that each entry can be read, replaced and deleted
 * on its own (PUT /api/v1/policy/{section}/{name}) and a file diff shows what changed.
 */
import { z } from 'zod';
import { durationSchema } from '../config/duration.js';
import { CATEGORIES } from '../bounces/categories.js';
import { parseRate } from './rate.js';

const duration = durationSchema;

/** "100/s", "6000/min", "10/h", "1000/day", or null for no limit. */
const rate = z.union([z.string(), z.null()]).transform((v, ctx) => {
  if (v === null) return null;
  const r = parseRate(v);
  if (!r) {
    ctx.addIssue({
      code: 'custom',
      message: 'expected a rate like "100/s", "6000/min", "500/h", "10000/day", or null',
    });
    return z.NEVER;
  }
  return r;
});

const name = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_.-]*$/i, 'expected a name of letters, digits, "_", "-" and "."');

const ipv4or6 = z
  .string()
  .regex(/^([0-9]{1,3}(\.[0-9]{1,3}){3}|[0-9a-f:]+)$/i, 'expected an IP address');

const hostName = z.string().regex(/^[a-z0-9.-]+$/i, 'expected a host name');

/** A scheduled queue: its share of delivery, retry schedule, lifetime and default pool. */
export const queueSchema = z.strictObject({
  /**
   * Share of delivery slots when queues compete for the same ready queue and for room in
   * memory: a queue of weight 100 gets ten times the slots of a queue of weight 10.
   */
  weight: z.number().int().min(1).max(1000).default(10),
  /** Delays between attempts; the last one repeats. Jitter spreads retries (fraction, ±). */
  retry: z.array(duration).min(1).prefault(['1m', '5m', '10m', '30m', '1h', '2h', '4h']),
  jitter: z.number().min(0).max(0.5).default(0.1),
  /** Past this age a recipient expires (Postfix's maximal_queue_lifetime is also 5 days). */
  maxAge: duration.prefault('5d'),
  /** The pool its messages leave from, unless the injection call names another. */
  pool: name.default('default'),
  /**
   * Add a one-click unsubscribe link (List-Unsubscribe and List-Unsubscribe-Post, RFC 8058)
   * to its single-recipient messages that have none; needs feedback.unsubscribeUrl.
   */
  listUnsubscribe: z.boolean().default(false),
  /**
   * Bulk (marketing) mail: intake asks its messages for List-Unsubscribe and
   * List-Unsubscribe-Post (RFC 8058), as Gmail, Yahoo and Microsoft require of bulk senders.
   */
  bulk: z.boolean().default(false),
});

/** An egress source: one local address to bind, and the name we give in EHLO. */
export const sourceSchema = z.strictObject({
  /** Omit to let the system choose the address (the implicit default source). */
  address: ipv4or6.optional(),
  helo: hostName.optional(),
});

/** A weighted set of sources. */
export const poolSchema = z.strictObject({
  /** Source name -> weight (a source of weight 2 gets twice the new ready queue slots). */
  sources: z.record(name, z.number().int().min(1).max(1000)).refine((s) => Object.keys(s).length, {
    message: 'a pool needs at least one source',
  }),
  /** Whether a deferred recipient may leave from another source of the pool on its retry. */
  rotateOnRetry: z.boolean().default(true),
});

/** A named group of MX host patterns ("*.google.com"), e.g. every host Google runs. */
export const providerSchema = z.strictObject({
  mx: z
    .array(z.string().regex(/^(\*\.)?[a-z0-9.-]+$/i, 'expected "host.name" or "*.suffix"'))
    .min(1),
});

/** The limits and connection settings of one ready queue (egress source x site). */
const settingsShape = {
  /** Connections open at once from one source to one site. */
  maxConnections: z.number().int().min(1).max(10_000),
  maxMessagesPerConnection: z.number().int().min(1).max(1_000_000),
  /** Recipients of one message sent in one transaction (RFC 5321 §4.5.3.1.8 asks for 100). */
  maxRecipientsPerTransaction: z.number().int().min(1).max(10_000),
  /** Recipients attempted per period; null for no limit. */
  messageRate: rate,
  /** New connections per period; null for no limit. */
  connectionRate: rate,
  /** Replaces the queue's retry delays for recipients of this destination. */
  retry: z.array(duration).min(1),
  connectTimeout: duration,
  /** How long an idle connection waits for more mail before QUIT. */
  idleTimeout: duration,
  /** opportunistic: STARTTLS when offered (RFC 7435); required: no delivery without it. */
  tls: z.enum(['opportunistic', 'required', 'disabled']),
  port: z.number().int().min(1).max(65_535),
  /**
   * Recipients of one scheduled queue held in memory for one ready queue. Past it, more are
   * put back in the store for a short while, so one slow site cannot fill the engine's memory.
   */
  maxReady: z.number().int().min(1).max(1_000_000),
};

const settingsSchema = z.strictObject(settingsShape).partial();

/** The reduced limits a ready queue uses while a back-off action is active on it. */
const backoffSchema = z
  .strictObject({
    maxConnections: settingsShape.maxConnections,
    maxMessagesPerConnection: settingsShape.maxMessagesPerConnection,
    messageRate: settingsShape.messageRate,
    connectionRate: settingsShape.connectionRate,
  })
  .partial();

/**
 * A shaping rule: settings for the destinations it selects. Which ones: none of provider,
 * domain, source (the defaults), a provider, a domain (and the site it belongs to), each
 * optionally narrowed to one egress source. More specific rules override less specific ones,
 * setting by setting: default, source, provider, provider+source, domain, domain+source.
 */
export const shapingRuleSchema = z
  .strictObject({
    provider: name.optional(),
    domain: hostName.transform((d) => d.toLowerCase()).optional(),
    source: name.optional(),
    /**
     * Domain rules only. true (default): the rule applies to the domain's site, shared by every
     * domain with the same MX hosts. false: the domain is its own site with its own limits.
     */
    mxRollup: z.boolean().optional(),
    backoff: backoffSchema.optional(),
    ...settingsSchema.shape,
  })
  .refine((r) => !(r.provider && r.domain), {
    message: 'a shaping rule selects a provider or a domain, not both',
  })
  .refine((r) => r.mxRollup === undefined || r.domain, {
    message: 'mxRollup applies to domain rules only',
    path: ['mxRollup'],
  });

/** What a response rule does when it matches. */
export const ACTIONS = ['backoff', 'suspend', 'disable-source', 'bounce'] as const;
export type ActionKind = (typeof ACTIONS)[number];

/** A pattern on remote replies and the action it triggers, for a time. */
export const responseRuleSchema = z
  .strictObject({
    /** The reply code ("421"), or a class ("4xx", "5xx"). */
    code: z
      .union([z.number().int().min(200).max(599), z.string().regex(/^[2-5](\d\d|xx)$/)])
      .optional(),
    /** The enhanced status code, e.g. "4.7.28" (RFC 3463); "4.7.*" matches a subject. */
    enhanced: z
      .string()
      .regex(/^[245]\.(\d{1,3}|\*)(\.(\d{1,3}|\*))?$/, 'expected e.g. "4.7.28" or "5.7.*"')
      .optional(),
    /** A regular expression on the reply text (case-insensitive). */
    text: z.string().refine(validRegExp, 'expected a valid regular expression').optional(),
    provider: name.optional(),
    site: z.string().optional(),
    domain: hostName.transform((d) => d.toLowerCase()).optional(),
    action: z.enum(ACTIONS),
    /** How long the action lasts (bounce acts once and needs none). */
    duration: duration.prefault('30m'),
    /**
     * Act only once `count` matching replies arrived within `within` on one ready queue
     * (KumoMTA's Threshold trigger); without it, the first matching reply acts.
     */
    trigger: z
      .strictObject({ count: z.number().int().min(1).max(100_000), within: duration })
      .optional(),
  })
  .refine((r) => r.code !== undefined || r.enhanced !== undefined || r.text !== undefined, {
    message: 'a response rule needs at least one of code, enhanced, text',
  });

/**
 * An installation's own bounce classification rule, tried before the shipped ones: a pattern
 * on a reply (enhanced code, text; all given must match) and the category it means.
 */
export const bounceRuleSchema = z
  .strictObject({
    enhanced: z
      .string()
      .regex(
        /^([245]|\*)\.(\d{1,3}|\*)\.(\d{1,3}|\*)$/,
        'expected e.g. "5.1.1", "*.7.1" or "5.7.*"',
      )
      .optional(),
    text: z.string().refine(validRegExp, 'expected a valid regular expression').optional(),
    category: z.enum(CATEGORIES),
  })
  .refine((r) => r.enhanced !== undefined || r.text !== undefined, {
    message: 'a bounce rule needs enhanced or text',
  });

/**
 * A feedback rule: when an address has had `count` records that match `when` within
 * `within`, act once (for that window): suppress it, tag it, or write a RuleTriggered record
 * (which webhooks and the event cursor carry to the installation).
 */
export const feedbackRuleSchema = z
  .strictObject({
    when: z.strictObject({
      types: z
        .array(
          z.enum([
            'TransientFailure',
            'Bounce',
            'Expiration',
            'Suppressed',
            'AsyncBounce',
            'Complaint',
          ]),
        )
        .min(1)
        .optional(),
      category: z.array(z.enum(CATEGORIES)).min(1).optional(),
      class: z
        .array(z.enum(['hard', 'soft', 'block', 'admin', 'undetermined']))
        .min(1)
        .optional(),
    }),
    count: z.number().int().min(1).max(1000).default(1),
    within: duration.prefault('30d'),
    action: z.enum(['suppress', 'tag', 'event']),
    /** For suppress: the reason the suppression list shows. */
    reason: z.enum(['inactive', 'rule', 'complaint', 'unsubscribe']).default('rule'),
    /** For tag: the tag. */
    tag: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_.:-]{0,63}$/i)
      .optional(),
  })
  .refine((r) => r.action !== 'tag' || r.tag, { message: 'a tag rule needs tag', path: ['tag'] });

export const policySchema = z.strictObject({
  queues: z.record(name, queueSchema).default({}),
  sources: z.record(name, sourceSchema).default({}),
  pools: z.record(name, poolSchema).default({}),
  providers: z.record(name, providerSchema).default({}),
  shaping: z.record(name, shapingRuleSchema).default({}),
  responseRules: z.record(name, responseRuleSchema).default({}),
  /** Bounce classification rules of this installation, before the shipped ones. */
  bounceRules: z.record(name, bounceRuleSchema).default({}),
  /** Rules on the feedback of an address that act on the installation. */
  feedbackRules: z.record(name, feedbackRuleSchema).default({}),
  /**
   * Whether the built-in providers, shaping rules and response rules (for Google, Microsoft,
   * Yahoo and other large receivers) are added under the ones of this document.
   */
  builtins: z.boolean().default(true),
});

export type PolicyInput = z.input<typeof policySchema>;
export type PolicyDoc = z.output<typeof policySchema>;
export type QueueConfig = z.output<typeof queueSchema>;
export type SourceConfig = z.output<typeof sourceSchema>;
export type PoolConfig = z.output<typeof poolSchema>;
export type ShapingRule = z.output<typeof shapingRuleSchema>;
export type ResponseRule = z.output<typeof responseRuleSchema>;
export type ShapingSettings = z.output<typeof settingsSchema>;
export type BackoffSettings = z.output<typeof backoffSchema>;
export type FeedbackRule = z.output<typeof feedbackRuleSchema>;

/** The sections of the document that hold named entries. */
export const SECTIONS = [
  'queues',
  'sources',
  'pools',
  'providers',
  'shaping',
  'responseRules',
  'bounceRules',
  'feedbackRules',
] as const;
export type Section = (typeof SECTIONS)[number];

function validRegExp(s: string): boolean {
  try {
    new RegExp(s, 'i');
    return true;
  } catch {
    return false;
  }
}
