/**
 * Bounce categories and classes. The categories are the set operators know from PowerMTA
 * (bounceCat); the class says what a sender should do about it: hard (the address is bad:
 * suppress it), soft (temporary: retry, or give up later), block (the receiver refuses us:
 * fix reputation, configuration or content), admin (our own policy decided), undetermined.
 */

export const CATEGORIES = [
  'bad-mailbox',
  'bad-domain',
  'inactive-mailbox',
  'invalid-sender',
  'quota-issues',
  'content-related',
  'bad-configuration',
  'no-answer-from-host',
  'bad-connection',
  'routing-errors',
  'message-expired',
  'policy-related',
  'protocol-errors',
  'spam-related',
  'virus-related',
  'relaying-issues',
  'other',
] as const;
export type BounceCategory = (typeof CATEGORIES)[number];

export const CLASSES = ['hard', 'soft', 'block', 'admin', 'undetermined'] as const;
export type BounceClass = (typeof CLASSES)[number];

/** The class of each category, for a permanent (5xx) reply. */
const PERMANENT_CLASS: Record<BounceCategory, BounceClass> = {
  'bad-mailbox': 'hard',
  'bad-domain': 'hard',
  'inactive-mailbox': 'hard',
  'invalid-sender': 'block',
  'quota-issues': 'soft',
  'content-related': 'block',
  'bad-configuration': 'soft',
  'no-answer-from-host': 'soft',
  'bad-connection': 'soft',
  'routing-errors': 'soft',
  'message-expired': 'soft',
  'policy-related': 'block',
  'protocol-errors': 'soft',
  'spam-related': 'block',
  'virus-related': 'block',
  'relaying-issues': 'block',
  other: 'undetermined',
};

/** Categories whose temporary (4xx) replies are soft: they may well pass on a retry. */
const SOFT_WHEN_TEMPORARY = new Set<BounceCategory>([
  'bad-mailbox',
  'bad-domain',
  'inactive-mailbox',
  'policy-related',
]);

/**
 * The class of a category for a reply code: a temporary reply can never mean the address is
 * bad for good, and a temporary policy reply (rate limit, greylisting) passes on a retry, so
 * those are soft for a 4xx; a refusal of us for spam, content or relaying stays a block.
 */
export function classOf(category: BounceCategory, code: number): BounceClass {
  if (code < 500 && SOFT_WHEN_TEMPORARY.has(category)) return 'soft';
  return PERMANENT_CLASS[category];
}
