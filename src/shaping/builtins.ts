/**
 * What Gridpost ships: the base settings of every ready queue, the large receivers as
 * providers (by their MX host names), their shaping, and response rules for the throttling and
 * blocking replies they are known to send. A policy document overrides any of these by name,
 * and `builtins: false` leaves them out.
 *
 * The limits follow what the large providers publish and what operators of PowerMTA and
 * KumoMTA commonly run with: few connections per IP to Google and Yahoo, more messages per
 * connection to Microsoft, and backing off rather than retrying hard when a receiver says
 * "slow down".
 */
import type { PolicyInput } from './policy-schema.js';

/** Base settings of every ready queue, before any rule (as a policy document would write them). */
export const BASE_SETTINGS = {
  maxConnections: 10,
  maxMessagesPerConnection: 100,
  maxRecipientsPerTransaction: 100,
  messageRate: null,
  connectionRate: null,
  connectTimeout: '30s',
  // Long enough to reuse a connection across a short gap in the traffic, short enough not to
  // hold a receiver's connection slot for nothing.
  idleTimeout: '5s',
  tls: 'opportunistic',
  maxReady: 1024,
  backoff: { maxConnections: 1, messageRate: '60/min' },
} as const;

/** Built-in providers, shaping and response rules. */
export const BUILTINS: Required<Pick<PolicyInput, 'providers' | 'shaping' | 'responseRules'>> = {
  providers: {
    google: { mx: ['*.google.com', '*.googlemail.com'] },
    microsoft: { mx: ['*.outlook.com', '*.hotmail.com', '*.protection.outlook.com'] },
    yahoo: { mx: ['*.yahoodns.net', '*.yahoo.com', '*.aol.com'] },
    apple: { mx: ['*.icloud.com', '*.mail.me.com'] },
    comcast: { mx: ['*.comcast.net'] },
  },
  shaping: {
    'google-default': { provider: 'google', maxConnections: 5, maxMessagesPerConnection: 50 },
    'microsoft-default': {
      provider: 'microsoft',
      maxConnections: 10,
      maxMessagesPerConnection: 100,
      connectionRate: '10/min',
    },
    'yahoo-default': { provider: 'yahoo', maxConnections: 5, maxMessagesPerConnection: 20 },
    'apple-default': { provider: 'apple', maxConnections: 5, maxMessagesPerConnection: 50 },
    'comcast-default': { provider: 'comcast', maxConnections: 25 },
  },
  responseRules: {
    // Gmail: "421-4.7.28 ... unusual rate of unsolicited mail originating from your IP".
    'google-rate-limited': {
      provider: 'google',
      enhanced: '4.7.28',
      action: 'backoff',
      duration: '1h',
    },
    // Gmail: "421-4.7.0 ... IP not in whitelist for RCPT domain" / "try again later, closing".
    'google-try-later': {
      provider: 'google',
      code: 421,
      text: 'try again later|temporarily rate limited',
      action: 'backoff',
      duration: '15m',
    },
    // Yahoo: "421 4.7.0 [TSS04] Messages from x temporarily deferred due to unexpected volume
    // or user complaints".
    'yahoo-deferred-volume': {
      provider: 'yahoo',
      text: '\\[TSS04\\]',
      action: 'backoff',
      duration: '1h',
    },
    // Yahoo: "[TS01]/[TS02] Messages from x temporarily deferred due to user complaints".
    'yahoo-deferred-complaints': {
      provider: 'yahoo',
      text: '\\[TS0[12]\\]',
      action: 'suspend',
      duration: '1h',
    },
    // Yahoo: "554 5.7.9 ... [TS03] All messages from x will be permanently deferred".
    'yahoo-blocked': {
      provider: 'yahoo',
      text: '\\[TS03\\]',
      action: 'disable-source',
      duration: '4h',
    },
    // Microsoft: "550 5.7.1 Service unavailable, Client host [x] blocked using Spamhaus" and
    // "5.7.606 Access denied, banned sending IP [x]" and "S3150" block-list replies.
    'microsoft-blocklisted': {
      provider: 'microsoft',
      text: 'banned sending IP|blocked using|\\bS3150\\b|\\bS3140\\b',
      action: 'disable-source',
      duration: '4h',
    },
    // Microsoft: "451 4.7.650 The mail server [x] has been temporarily rate limited due to IP
    // reputation", and "4.7.500 Server busy. Please try again later".
    'microsoft-rate-limited': {
      provider: 'microsoft',
      enhanced: '4.7.650',
      action: 'backoff',
      duration: '1h',
    },
    'microsoft-busy': {
      provider: 'microsoft',
      enhanced: '4.7.500',
      action: 'backoff',
      duration: '15m',
    },
    // Any receiver: too many connections from us.
    'too-many-connections': {
      code: '4xx',
      text: 'too many (concurrent |simultaneous )?connections|too many sessions',
      action: 'backoff',
      duration: '10m',
    },
    // Any receiver: a temporary reply that says the mailbox does not exist. Retrying it for
    // days only hurts the sender's reputation.
    'unknown-user-as-4xx': {
      code: '4xx',
      text: 'user unknown|no such user|unknown user|mailbox (does not exist|not found)',
      action: 'bounce',
    },
  },
};
