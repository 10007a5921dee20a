/**
 * The bounce classifier: turns a remote (or local) reply into a bounce category and class,
 * and says which rule decided. The installation's own rules (the policy's bounceRules) come
 * first, then the shipped ones in this order: known misuses corrected by text, specific
 * enhanced codes, text patterns, generic enhanced codes, and last the reply code alone.
 */
import type { SmtpReply } from '../delivery/reply.js';
import {
  GENERIC_CODES,
  OVERRIDES,
  SPECIFIC_CODES,
  TEXT_RULES,
  type BounceRuleData,
} from './builtin-rules.js';
import { classOf, type BounceCategory, type BounceClass } from './categories.js';
import { enhancedOf } from './reply-text.js';

/** What a reply means for the sender. */
export interface Classification {
  category: BounceCategory;
  class: BounceClass;
  /** The rule that decided: "installation:<name>", "builtin:<name>", "code:<n>". */
  rule: string;
}

interface Compiled {
  name: string;
  enhanced: string[] | null;
  text: RegExp | null;
  category: BounceCategory;
}

/** Classifies replies with the installation's rules, then the shipped ones. */
export class Classifier {
  private readonly installation: Compiled[];
  private static readonly shipped = {
    overrides: OVERRIDES.map(compile),
    specific: SPECIFIC_CODES.map(([e, category]) =>
      compile({ name: `enhanced ${e}`, enhanced: e, category }),
    ),
    text: TEXT_RULES.map(compile),
    generic: GENERIC_CODES.map(([e, category]) =>
      compile({ name: `enhanced ${e}`, enhanced: e, category }),
    ),
  };

  constructor(installation: BounceRuleData[] = []) {
    this.installation = installation.map(compile);
  }

  /** The category, class and rule of a reply. */
  classify(given: SmtpReply): Classification {
    // A reply without a leading enhanced code may still carry one in its text.
    const reply = { ...given, enhanced: enhancedOf(given) };
    const found = (rules: Compiled[], origin: string) => {
      const r = rules.find((c) => matches(c, reply));
      return r ? { category: r.category, rule: `${origin}:${r.name}` } : null;
    };
    const s = Classifier.shipped;
    const hit =
      found(this.installation, 'installation') ??
      found(s.overrides, 'builtin') ??
      found(s.specific, 'builtin') ??
      found(s.text, 'builtin') ??
      found(s.generic, 'builtin');
    if (hit) return { ...hit, class: classOf(hit.category, reply.code) };
    return { category: 'other', class: 'undetermined', rule: `code:${reply.code}` };
  }
}

function compile(r: BounceRuleData): Compiled {
  return {
    name: r.name,
    enhanced: r.enhanced ? r.enhanced.split('.') : null,
    text: r.text ? new RegExp(r.text, 'i') : null,
    category: r.category,
  };
}

function matches(c: Compiled, reply: SmtpReply): boolean {
  if (c.enhanced) {
    if (!reply.enhanced) return false;
    const got = reply.enhanced.split('.');
    if (!c.enhanced.every((part, i) => part === '*' || part === got[i])) return false;
  }
  return !c.text || c.text.test(reply.text);
}
