/**
 * Feedback rules: custom actions on the installation when an address's feedback matches a
 * condition, e.g. three soft bounces in 30 days mark it inactive (suppress, reason
 * inactive), a bounce category tags it, or any match writes a RuleTriggered record that the
 * webhooks and the event cursor carry. A rule acts once per address per window.
 */
import type { Statement } from 'better-sqlite3';
import type { Logger } from 'pino';
import type { Recorder } from '../records/recorder.js';
import type { GridpostRecord, StoredRecord } from '../records/types.js';
import type { FeedbackRule } from '../shaping/policy-schema.js';
import type { Committer } from '../spool/committer.js';
import type { Db } from '../spool/store.js';
import type { SuppressionList } from './suppression.js';

/** Applies the policy's feedback rules to published records. */
export class FeedbackRules {
  private readonly stmt: Record<'fired' | 'fire' | 'tag' | 'tags', Statement>;

  constructor(
    db: Db,
    private readonly committer: Committer,
    private readonly recorder: Recorder,
    private readonly suppressions: SuppressionList,
    private readonly rules: () => Record<string, FeedbackRule>,
    private readonly log: Logger,
  ) {
    db.exec(`CREATE TABLE IF NOT EXISTS feedback_triggers (rule TEXT NOT NULL,
        address TEXT NOT NULL, until INTEGER NOT NULL, PRIMARY KEY (rule, address));
      CREATE TABLE IF NOT EXISTS address_tags (address TEXT NOT NULL, tag TEXT NOT NULL,
        at INTEGER NOT NULL, PRIMARY KEY (address, tag));`);
    this.stmt = {
      fired: db.prepare('SELECT until FROM feedback_triggers WHERE rule = ? AND address = ?'),
      fire: db.prepare(`INSERT INTO feedback_triggers (rule, address, until) VALUES (?, ?, ?)
        ON CONFLICT DO UPDATE SET until = excluded.until`),
      tag: db.prepare('INSERT OR IGNORE INTO address_tags (address, tag, at) VALUES (?, ?, ?)'),
      tags: db.prepare('SELECT tag FROM address_tags WHERE address = ? ORDER BY tag').pluck(),
    };
  }

  /** The tags of an address. */
  tagsOf(address: string): string[] {
    return this.stmt.tags.all(address.toLowerCase()) as string[];
  }

  /** Looks at newly published records (called by the recorder's listener). */
  observe(records: readonly StoredRecord[]): void {
    const rules = Object.entries(this.rules());
    if (rules.length === 0) return;
    for (const r of records) {
      if (!('recipient' in r) || !r.recipient || r.type === 'RuleTriggered') continue;
      const address = r.recipient.toLowerCase();
      for (const [name, rule] of rules) if (matches(rule, r)) this.consider(name, rule, r, address);
    }
  }

  /** Counts the address's matching records in the window and acts when there are enough. */
  private consider(name: string, rule: FeedbackRule, r: StoredRecord, address: string) {
    const now = Date.now();
    const until = this.stmt.fired.get(name, address) as { until: number } | undefined;
    if (until && until.until > now) return;
    const since = now - rule.within;
    const count = this.recorder
      .forRecipient(address)
      .filter((x) => Date.parse(x.at) >= since && matches(rule, x)).length;
    if (count < rule.count) return;
    this.act(name, rule, r, address, count, now);
  }

  private act(
    name: string,
    rule: FeedbackRule,
    r: StoredRecord,
    address: string,
    count: number,
    now: number,
  ): void {
    const record: GridpostRecord = {
      type: 'RuleTriggered',
      at: new Date(now).toISOString(),
      rule: name,
      recipient: address,
      domain: address.slice(address.lastIndexOf('@') + 1),
      action: rule.action,
      count,
      ...(rule.tag ? { tag: rule.tag } : {}),
      triggeredBy: { seq: r.seq, type: r.type },
    };
    let stored: StoredRecord[] = [];
    this.committer.submitDetached(
      () => {
        this.stmt.fire.run(name, address, now + rule.within);
        if (rule.action === 'tag') this.stmt.tag.run(address, rule.tag, now);
        if (rule.action === 'suppress') {
          this.suppressions.addInWrite(address, rule.reason, `rule:${name}`);
        }
        stored = [this.recorder.insert(record)];
      },
      () => this.recorder.publish(stored),
      (err) => this.log.error({ err, rule: name, address }, 'feedback rule could not act'),
    );
  }
}

// The records a rule without `types` looks at: the failures, immediate or reported later.
const DEFAULT_TYPES: string[] = ['TransientFailure', 'Bounce', 'Expiration', 'AsyncBounce'];

/** Whether a record matches a rule's condition. */
function matches(rule: FeedbackRule, r: StoredRecord): boolean {
  const w = rule.when;
  if (w.types && !(w.types as string[]).includes(r.type)) return false;
  if (!w.types && !DEFAULT_TYPES.includes(r.type)) return false;
  const bounce = 'bounce' in r ? r.bounce : undefined;
  if (w.category && (!bounce || !w.category.includes(bounce.category))) return false;
  if (w.class && (!bounce || !w.class.includes(bounce.class))) return false;
  return true;
}
