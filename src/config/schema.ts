/**
 * The start-up configuration: its schema, defaults and types. Durations accept seconds or
 * strings such as "5m"; addresses are HOST:PORT. docs/configuration.md shows a full example.
 */
import { hostname } from 'node:os';
import { z } from 'zod';
import { durationSchema } from './duration.js';

const duration = durationSchema;

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, 'expected HOST:PORT, e.g. 127.0.0.1:2525');

const cidr = z.string().regex(/^[0-9a-fA-F:.]+\/\d{1,3}$/, 'expected a network like 10.0.0.0/8');

const domain = z
  .string()
  .regex(/^[a-z0-9.-]+$/i, 'expected a domain name')
  .transform((d) => d.toLowerCase());

const user = z.strictObject({ name: z.string().min(1), password: z.string().min(1) });

const smtp = z.strictObject({
  listen: hostPort.default('127.0.0.1:2525'),
  /** Largest message accepted, in bytes (SIZE, RFC 1870). 25 MiB is the common provider cap. */
  maxMessageSize: z
    .number()
    .int()
    .positive()
    .default(25 * 1024 * 1024),
  /** Recipients per transaction; RFC 5321 §4.5.3.1.8 requires at least 100. */
  maxRecipients: z.number().int().min(1).default(1000),
  maxClients: z.number().int().min(1).default(1000),
  allowedNetworks: z.array(cidr).default(['127.0.0.0/8', '::1/128']),
  users: z.array(user).default([]),
  tls: z.strictObject({ cert: z.string(), key: z.string() }).optional(),
  /** Idle client timeout; RFC 5321 §4.5.3.2.7 asks servers to wait at least 5 minutes. */
  socketTimeout: duration.prefault('5m'),
});

const apiKey = z.strictObject({ name: z.string().min(1), key: z.string().min(16) });

const http = z.strictObject({
  listen: hostPort.default('127.0.0.1:8025'),
  apiKeys: z.array(apiKey).default([]),
  /** Largest request body, in bytes (a batch of raw messages). */
  bodyLimit: z
    .number()
    .int()
    .positive()
    .default(64 * 1024 * 1024),
});

const timeouts = z.strictObject({
  connect: duration.prefault('30s'),
  greeting: duration.prefault('5m'),
  ehlo: duration.prefault('5m'),
  starttls: duration.prefault('2m'),
  mail: duration.prefault('5m'),
  rcpt: duration.prefault('5m'),
  dataInit: duration.prefault('2m'),
  dataBlock: duration.prefault('3m'),
  dataDone: duration.prefault('10m'),
  quit: duration.prefault('5s'),
});

const route = z.strictObject({
  domain,
  /** Fixed next hops, tried in order, instead of MX lookup (a smarthost). */
  hosts: z.array(hostPort).min(1),
});

/**
 * Engine-wide delivery settings. Everything that varies per destination or per source
 * (connections, rates, TLS, ports, sources and pools) is in the traffic policy instead.
 */
const delivery = z.strictObject({
  /** The EHLO name of the implicit default source (when the policy defines no sources). */
  helo: z.string().optional(),
  /** The address the implicit default source binds (when the policy defines no sources). */
  localAddress: z.string().optional(),
  /** Destination SMTP port unless a shaping rule sets one; 25 but for test worlds. */
  port: z.number().int().min(1).max(65535).default(25),
  routes: z.array(route).default([]),
  /** Outbound connections open at once, over every source and site. */
  maxConnectionsTotal: z.number().int().min(1).default(400),
  /**
   * How long a ready queue whose site failed as a whole (no host reachable, temporary DNS
   * failure, a 421) is left alone; what arrives for it meanwhile is deferred without a
   * connection.
   */
  holdAfterFailure: duration.prefault('30s'),
  timeouts: timeouts.prefault({}),
});

const dns = z.strictObject({
  servers: z.array(hostPort).optional(),
  timeout: duration.prefault('5s'),
  tries: z.number().int().min(1).default(2),
  cache: duration.prefault('60s'),
  ipv6: z.boolean().default(true),
});

const spool = z.strictObject({
  /**
   * The most recipients held in memory, ready for delivery. More stay in the store and are
   * loaded as room frees up, so memory does not grow with the queue.
   */
  window: z.number().int().min(100).default(20_000),
  /**
   * Group commit window: how long the first write of a group waits for others before the
   * group is committed. 0 commits once per event-loop turn; the WAL fsyncs (which run off the
   * event loop) coalesce on their own, so a longer window only adds latency on this hardware.
   */
  commitWindow: duration.prefault('0ms'),
  /**
   * full: a message is acknowledged only once its commit is fsync'd (it survives a power cut);
   * normal: trust the OS (a crash of the engine alone loses nothing, a power cut may lose the
   * last commits).
   */
  sync: z.enum(['full', 'normal']).default('full'),
});

const records = z.strictObject({
  /** Accounting files rotate at this size (bytes) or every hour, whichever first. */
  rotateBytes: z
    .number()
    .int()
    .min(4096)
    .default(256 * 1024 * 1024),
  /** Records stay queryable in the store for this long. */
  retention: duration.prefault('30d'),
});

const feedback = z.strictObject({
  /**
   * The public base URL of this engine's HTTP listener (behind a proxy, usually), e.g.
   * https://mta.example.com. Set, it makes one-click unsubscribe links (RFC 8058) at
   * <url>/unsubscribe/<token> for the queues and messages that ask for them.
   */
  unsubscribeUrl: z.url({ protocol: /^https?$/ }).optional(),
});

/**
 * Asynchronous bounces and complaints. With a domain set, every outgoing recipient gets its own
 * signed return path at it (VERP), so a DSN or a complaint that comes back days later maps to
 * the exact recipient and message; the bounce listener takes that mail.
 */
const bounces = z.strictObject({
  /** The return-path domain (its MX points at the bounce listener), e.g. bounces.example.com. */
  domain: domain.optional(),
  /** More domains the listener takes mail for (return paths of earlier configurations). */
  alsoAccept: z.array(domain).default([]),
  /** Where the bounce listener takes SMTP (port 25 of a public address, usually). */
  listen: hostPort.optional(),
  /**
   * Local parts the listener accepts without a token, at its domains: feedback-loop and
   * postmaster addresses whose reports carry the token inside the returned message.
   */
  mailboxes: z
    .array(z.string().regex(/^[^@\s]+$/, 'expected a local part'))
    .default(['fbl', 'abuse', 'postmaster']),
  /** Largest report accepted, in bytes; reports quote the original, rarely more. */
  maxMessageSize: z
    .number()
    .int()
    .positive()
    .default(10 * 1024 * 1024),
  maxClients: z.number().int().min(1).default(200),
});

/** What a check at intake does when a message fails it: refuse it, accept it with a warning in
 * its Reception record, or not look at all. */
const checkAction = z.enum(['refuse', 'warn', 'off']);

/**
 * Deliverability checks at intake (docs/maildomains.md). Each has a stable reason code, given
 * in the refusal and in the record.
 */
const checks = z.strictObject({
  /** RFC 5322 structure: header syntax, one From, at most one Date, Subject, Message-ID... */
  structure: checkAction.default('refuse'),
  /**
   * The From domain must be a configured maildomain (or listed in allowedFromDomains). auto:
   * refuse once at least one maildomain exists, so a fresh engine still takes any mail.
   */
  fromMaildomain: z.enum(['refuse', 'warn', 'off', 'auto']).default('auto'),
  /** From domains let through without being maildomains. */
  allowedFromDomains: z.array(domain).default([]),
  /** A maildomain's mail must get a DKIM signature aligned with its From domain (DMARC). */
  dkimAlignment: checkAction.default('warn'),
  /** Mail of bulk queues must carry List-Unsubscribe and List-Unsubscribe-Post (RFC 8058). */
  listUnsubscribe: checkAction.default('refuse'),
});

/** Maildomains: how domain keys change state, how often DNS is looked at. */
const maildomains = z.strictObject({
  /** How long a replaced DKIM key stays published and valid after its successor signs. */
  keyGrace: duration.prefault('7d'),
  /** How often the engine looks up each maildomain's DNS (and pending keys' records). */
  dnsCheckInterval: duration.prefault('10m'),
  /** Warn about a certified account's certificate this long before it expires. */
  certificateWarning: duration.prefault('30d'),
  /** The host the return-path (bounce) domains' MX must name; the engine's hostname if unset. */
  bounceHost: z
    .string()
    .regex(/^[a-z0-9.-]+$/i, 'expected a host name')
    .optional(),
});

export const configSchema = z.strictObject({
  /** The engine's name in banners, EHLO and Received fields; the system's by default. */
  hostname: z
    .string()
    .regex(/^[a-z0-9.-]+$/i, 'expected a host name')
    .default(() => hostname()),
  dataDir: z.string().default('./data'),
  smtp: smtp.prefault({}),
  http: http.prefault({}),
  delivery: delivery.prefault({}),
  /**
   * The traffic policy (queues, sources, pools, shaping and response rules; docs/policy.md).
   * Applied to the store at start whenever it differs from what start last applied; edits made
   * through the API or the CLI meanwhile are kept until this key changes.
   */
  policy: z.unknown().optional(),
  dns: dns.prefault({}),
  spool: spool.prefault({}),
  records: records.prefault({}),
  feedback: feedback.prefault({}),
  bounces: bounces.prefault({}).refine((b) => !b.listen || b.domain || b.alsoAccept.length > 0, {
    message: 'bounces.listen needs bounces.domain (or alsoAccept) to know what mail to take',
    path: ['domain'],
  }),
  checks: checks.prefault({}),
  maildomains: maildomains.prefault({}),
  log: z.strictObject({ level: z.string().default('info') }).prefault({}),
});

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type DeliveryTimeouts = z.output<typeof timeouts>;
export type CheckAction = z.output<typeof checkAction>;
