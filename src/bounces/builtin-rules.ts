/**
 * The shipped bounce classification rules, as data. Enhanced status codes (RFC 3463 and its
 * IANA registry) decide first where they are specific; text patterns decide for replies that
 * lack one or give only a generic one (X.0.0, X.7.1, ...), and correct the codes some large
 * receivers are known to misuse. The category names are PowerMTA's.
 *
 * Sources: RFC 3463, RFC 7505 (X.1.10), RFC 7372 (X.7.20-X.7.26), RFC 8098; the error pages of
 * Google (support.google.com/a/answer/3726730), Yahoo (senders.yahooinc.com/smtp-error-codes),
 * Microsoft (learn.microsoft.com, "Email non-delivery reports in Exchange Online"), and the
 * reply texts of Postfix, Exim and Sendmail. test/data/replies.tsv holds real replies that
 * these rules are checked against.
 */
import type { BounceCategory } from './categories.js';

/** A rule on a reply: every field given must match. */
export interface BounceRuleData {
  name: string;
  /** "5.1.1", "*.1.1" (either class), "*.7.*". */
  enhanced?: string;
  /** A case-insensitive regular expression on the reply text. */
  text?: string;
  category: BounceCategory;
}

/** Known misuses of enhanced codes, corrected by the text (tried first). */
export const OVERRIDES: BounceRuleData[] = [
  // Microsoft answers unknown recipients of directory-based edge blocking with 5.4.1.
  {
    name: 'microsoft-dbeb-unknown',
    enhanced: '*.4.1',
    text: 'recipient address rejected: access denied',
    category: 'bad-mailbox',
  },
  // Microsoft block-list replies come as 5.7.1 or 5.7.606-649 with an S-code.
  {
    name: 'microsoft-block-list',
    enhanced: '*.7.*',
    text: 'banned sending ip|\\bS3150\\b|\\bS3140\\b|part of their network is on our block list',
    category: 'spam-related',
  },
  // Google rate-limits with 4.2.1 ("receiving mail too quickly"), which RFC 3463 gives to
  // disabled mailboxes.
  {
    name: 'google-rate-as-4.2.1',
    enhanced: '4.2.1',
    text: 'too quickly|at a rate|relay limit',
    category: 'policy-related',
  },
  // Microsoft answers unknown recipients with 5.1.10, which RFC 7505 gives to null MX.
  {
    name: 'microsoft-recipient-not-found',
    enhanced: '*.1.10',
    text: 'RecipientNotFound|recipient not found',
    category: 'bad-mailbox',
  },
  // Yahoo's complaint and volume deferrals use 4.7.0 / 4.7.1 with a TS code.
  { name: 'yahoo-ts', enhanced: '*.7.*', text: '\\[TSS?0\\d\\]', category: 'spam-related' },
];

/** Specific enhanced codes: they decide on their own. */
export const SPECIFIC_CODES: [string, BounceCategory][] = [
  ['*.1.1', 'bad-mailbox'],
  ['*.1.2', 'bad-domain'],
  ['*.1.3', 'bad-mailbox'],
  ['*.1.4', 'bad-mailbox'],
  ['*.1.6', 'inactive-mailbox'],
  ['*.1.7', 'invalid-sender'],
  ['*.1.8', 'invalid-sender'],
  ['*.1.10', 'bad-domain'],
  ['*.2.1', 'inactive-mailbox'],
  ['*.2.2', 'quota-issues'],
  ['*.2.3', 'content-related'],
  ['*.2.4', 'routing-errors'],
  ['*.3.1', 'quota-issues'],
  ['*.3.2', 'bad-connection'],
  ['*.3.3', 'protocol-errors'],
  ['*.3.4', 'content-related'],
  ['*.3.5', 'bad-configuration'],
  ['*.4.1', 'no-answer-from-host'],
  ['*.4.2', 'bad-connection'],
  ['*.4.3', 'routing-errors'],
  ['*.4.4', 'routing-errors'],
  ['*.4.5', 'bad-connection'],
  ['*.4.6', 'routing-errors'],
  ['*.4.7', 'message-expired'],
  ['*.5.3', 'policy-related'],
  ['*.5.*', 'protocol-errors'],
  ['*.6.*', 'content-related'],
  ['*.7.2', 'policy-related'],
  ['*.7.3', 'policy-related'],
  ['*.7.4', 'bad-configuration'],
  ['*.7.7', 'content-related'],
  ['*.7.8', 'bad-configuration'],
  ['*.7.13', 'inactive-mailbox'],
  ['*.7.17', 'inactive-mailbox'],
  ['*.7.18', 'bad-domain'],
  ['*.7.20', 'policy-related'],
  ['*.7.21', 'policy-related'],
  ['*.7.22', 'policy-related'],
  ['*.7.23', 'policy-related'],
  ['*.7.24', 'policy-related'],
  ['*.7.25', 'bad-configuration'],
  ['*.7.26', 'policy-related'],
  ['*.7.27', 'invalid-sender'],
  ['*.7.28', 'spam-related'],
];

/** Text patterns, for replies with no enhanced code or a generic one. First match wins. */
export const TEXT_RULES: BounceRuleData[] = [
  {
    name: 'block-list',
    text: 'spamhaus|spamcop|barracuda|sorbs|blocked using|black ?list|block ?list|\\bRBL\\b|dnsbl|listed (at|in|on|by)',
    category: 'spam-related',
  },
  { name: 'virus', text: 'virus|malware|infected|trojan', category: 'virus-related' },
  {
    name: 'spam',
    text: 'spam|unsolicited|junk mail|bulk mail|reputation|poor sender|suspicious',
    category: 'spam-related',
  },
  {
    name: 'relaying',
    text: 'relay(ing)? (access )?(denied|not permitted|prohibited)|not permitted to relay|unable to relay|relaying',
    category: 'relaying-issues',
  },
  { name: 'greylisting', text: 'greylist|graylist', category: 'policy-related' },
  {
    name: 'sender-configuration',
    text: 'reverse dns|\\bptr\\b|rdns|helo command rejected|client host rejected|cannot find your hostname|tls required',
    category: 'bad-configuration',
  },
  {
    name: 'bad-sender',
    text: 'sender (address )?(rejected|verify failed|verification failed|domain)|invalid sender|bad sender|mail from.*rejected|from: header',
    category: 'invalid-sender',
  },
  {
    name: 'quota',
    text: 'over ?quota|quota (exceeded|full)|mailbox (is )?full|insufficient (system )?storage|exceeded (its )?storage|out of storage|not enough space',
    category: 'quota-issues',
  },
  {
    name: 'inactive',
    text: '(account|mailbox|user|address) (is |has been )?(disabled|deactivated|inactive|suspended|expired|closed|locked|blocked for inactivity)|no longer (active|valid|in use)',
    category: 'inactive-mailbox',
  },
  {
    name: 'unknown-user',
    text: "user unknown|unknown user|no such (user|mailbox|recipient|address)|(user|mailbox|recipient|address|account) (does not|doesn't) exist|doesn't have an? [\\w.-]+ account|recipient not found|invalid (recipient|mailbox)|not a valid (mailbox|recipient)|mailbox not found|unknown recipient|recipient address rejected|no mailbox here|unrouteable address|user not found|addressee unknown",
    category: 'bad-mailbox',
  },
  {
    name: 'unknown-domain',
    text: 'host (or domain name )?not found|domain (not found|does not exist|has no mx)|unknown domain|no mx (record)?|name service error|host unknown|unrouteable domain|domain.*(retired|no longer in use)',
    category: 'bad-domain',
  },
  {
    name: 'authentication',
    text: '\\bspf\\b|\\bdkim\\b|\\bdmarc\\b|unauthenticated|not authenticated|authentication (failed|required)',
    category: 'policy-related',
  },
  {
    name: 'size',
    text: 'message (is )?too (large|big)|size (limit|exceeds)|exceeds.*size',
    category: 'content-related',
  },
  {
    name: 'content',
    text: 'content (rejected|not accepted)|due to content|message content|prohibited (attachment|content)|attachment',
    category: 'content-related',
  },
  {
    name: 'busy',
    text: 'server busy|too busy|resources? (temporarily )?unavailable|temporary (system|local) problem|service (not )?available',
    category: 'bad-connection',
  },
  {
    name: 'rate',
    text: 'rate limit|too (many|fast|quickly)|try (again )?later|temporarily (deferred|rejected|blocked)|throttl|slow down|deferred|max(imum)? (messages?|connections?) per',
    category: 'policy-related',
  },
  {
    name: 'policy',
    text: 'policy|not (allowed|authorized|accepted)|prohibit|denied|refused|rejected|blocked',
    category: 'policy-related',
  },
  {
    name: 'connection',
    text: 'connection (refused|reset|closed|lost|dropped|timed out)|timed? ?out|timeout',
    category: 'bad-connection',
  },
  { name: 'expired', text: 'expired|lifetime|too long in the queue', category: 'message-expired' },
  {
    name: 'protocol',
    text: 'syntax error|bad sequence|protocol (error|violation)|command (not recognized|unrecognized)',
    category: 'protocol-errors',
  },
];

/** Generic enhanced codes: used when no text pattern says more. */
export const GENERIC_CODES: [string, BounceCategory][] = [
  ['*.1.*', 'bad-mailbox'],
  ['*.2.*', 'bad-mailbox'],
  ['*.3.*', 'other'],
  ['*.4.*', 'routing-errors'],
  ['*.7.*', 'policy-related'],
  ['*.0.0', 'other'],
];
