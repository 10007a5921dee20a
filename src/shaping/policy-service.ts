/**
 * The policy in force and the operator's pauses, kept in the store. Validation happens here,
 * for every way a policy arrives (start-up config, a file applied through the CLI, an API
 * edit): the schema first, then the references between sections (a queue's pool, a pool's
 * sources, a rule's provider or source). Errors name the key path and what is allowed.
 * Listeners hear of every change, so limits apply live.
 */
import type { Statement } from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { GridpostError } from '../errors/catalogue.js';
import type { Db } from '../spool/store.js';
import { BUILTINS } from './builtins.js';
import { DEFAULT_NAME, Policy, type PolicyEnvironment } from './policy.js';
import { SECTIONS, policySchema, type PolicyDoc, type Section } from './policy-schema.js';

/** What an operator can pause. */
export type PauseKind = 'queue' | 'site' | 'source';

/** A pause in force. */
export interface Pause {
  kind: PauseKind;
  name: string;
  since: string;
}

/** Parses and checks a policy document; throws E_POLICY_INVALID naming every bad key. */
export function validatePolicy(raw: unknown, source = 'policy'): PolicyDoc {
  const result = policySchema.safeParse(raw ?? {});
  if (!result.success) {
    const issues = result.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
    throw invalid(source, issues);
  }
  const doc = result.data;
  const problems = references(doc);
  if (problems.length) throw invalid(source, problems);
  if (!doc.queues[DEFAULT_NAME]) {
    doc.queues = { [DEFAULT_NAME]: policySchema.shape.queues.parse({ d: {} }).d!, ...doc.queues };
  }
  return doc;
}

function invalid(source: string, issues: { path: string; message: string }[]): GridpostError {
  const lines = issues.map((i) => `  ${i.path || '(top)'}: ${i.message}`);
  return new GridpostError('E_POLICY_INVALID', `${source} is invalid:\n${lines.join('\n')}`, {
    path: issues[0]?.path,
  });
}

/** Cross-section references that the schema alone cannot check. */
function references(doc: PolicyDoc): { path: string; message: string }[] {
  const out: { path: string; message: string }[] = [];
  const sources = Object.keys(doc.sources).length ? Object.keys(doc.sources) : [DEFAULT_NAME];
  const pools = new Set([...Object.keys(doc.pools), DEFAULT_NAME]);
  const providers = new Set([
    ...Object.keys(doc.providers),
    ...(doc.builtins ? Object.keys(BUILTINS.providers) : []),
  ]);
  const list = (s: Iterable<string>) => [...s].join(', ') || '(none)';
  for (const [name, q] of Object.entries(doc.queues)) {
    if (!pools.has(q.pool)) {
      out.push({
        path: `queues.${name}.pool`,
        message: `no pool "${q.pool}"; pools: ${list(pools)}`,
      });
    }
  }
  for (const [name, p] of Object.entries(doc.pools)) {
    for (const s of Object.keys(p.sources)) {
      if (!sources.includes(s)) {
        out.push({
          path: `pools.${name}.sources.${s}`,
          message: `no source "${s}"; sources: ${list(sources)}`,
        });
      }
    }
  }
  const check = (section: string, name: string, r: { provider?: string; source?: string }) => {
    if (r.provider && !providers.has(r.provider)) {
      out.push({
        path: `${section}.${name}.provider`,
        message: `no provider "${r.provider}"; providers: ${list(providers)}`,
      });
    }
    if (r.source && !sources.includes(r.source)) {
      out.push({
        path: `${section}.${name}.source`,
        message: `no source "${r.source}"; sources: ${list(sources)}`,
      });
    }
  };
  for (const [n, r] of Object.entries(doc.shaping)) check('shaping', n, r);
  for (const [n, r] of Object.entries(doc.responseRules)) check('responseRules', n, r);
  return out;
}

/** The stored policy, the compiled one in force, and the pauses. */
export class PolicyService {
  private policy: Policy;
  /** The document as written (durations and rates as text), which export gives back. */
  private raw: Record<string, unknown> = {};
  private readonly listeners: ((p: Policy) => void)[] = [];
  private readonly pauses = new Map<string, Pause>();
  private readonly stmt: Record<string, Statement>;

  constructor(
    db: Db,
    private readonly env: PolicyEnvironment,
    /** The start-up configuration's policy, applied when it changed since it was last. */
    seed: unknown,
  ) {
    db.exec(`CREATE TABLE IF NOT EXISTS policy (id INTEGER PRIMARY KEY CHECK (id = 1),
        json TEXT NOT NULL, seed_hash TEXT, updated_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS pauses (kind TEXT NOT NULL, name TEXT NOT NULL,
        since INTEGER NOT NULL, PRIMARY KEY (kind, name));`);
    this.stmt = {
      load: db.prepare('SELECT json, seed_hash FROM policy WHERE id = 1'),
      save: db.prepare(`INSERT INTO policy (id, json, seed_hash, updated_at) VALUES (1, ?, ?, ?)
        ON CONFLICT (id) DO UPDATE SET json = excluded.json,
          seed_hash = COALESCE(excluded.seed_hash, policy.seed_hash),
          updated_at = excluded.updated_at`),
      pauses: db.prepare('SELECT kind, name, since FROM pauses'),
      pause: db.prepare('INSERT OR IGNORE INTO pauses (kind, name, since) VALUES (?, ?, ?)'),
      resume: db.prepare('DELETE FROM pauses WHERE kind = ? AND name = ?'),
    };
    this.policy = new Policy(this.loadOrSeed(seed), env);
    for (const p of this.stmt.pauses!.all() as { kind: PauseKind; name: string; since: number }[]) {
      this.pauses.set(`${p.kind}:${p.name}`, { ...p, since: new Date(p.since).toISOString() });
    }
  }

  private loadOrSeed(seed: unknown): PolicyDoc {
    const row = this.stmt.load!.get() as { json: string; seed_hash: string | null } | undefined;
    const seedHash = seed === undefined ? null : hash(seed);
    if (seed !== undefined && (!row || row.seed_hash !== seedHash)) {
      const doc = validatePolicy(seed, 'configuration key "policy"');
      this.raw = asObject(seed);
      this.stmt.save!.run(JSON.stringify(seed), seedHash, Date.now());
      return doc;
    }
    if (row) {
      this.raw = asObject(JSON.parse(row.json));
      return validatePolicy(this.raw, 'the stored policy');
    }
    return validatePolicy({});
  }

  /** The policy in force. */
  get current(): Policy {
    return this.policy;
  }

  /** Calls `fn` with every new policy. */
  onChange(fn: (p: Policy) => void): void {
    this.listeners.push(fn);
  }

  /** Replaces the whole document (a file applied); returns the new policy. */
  apply(raw: unknown, source = 'policy'): Policy {
    const doc = validatePolicy(raw, source);
    this.raw = asObject(raw);
    this.stmt.save!.run(JSON.stringify(this.raw), null, Date.now());
    this.policy = new Policy(doc, this.env);
    for (const fn of this.listeners) fn(this.policy);
    return this.policy;
  }

  /** The document as it would be exported (what apply takes back). */
  export(): Record<string, unknown> {
    return structuredClone(this.raw);
  }

  /** One entry of a section as written, or undefined. */
  get(section: Section, name: string): unknown {
    return (this.raw[section] as Record<string, unknown> | undefined)?.[name];
  }

  /** Replaces one entry of a section (or adds it). */
  put(section: Section, name: string, entry: unknown): Policy {
    const doc = this.export();
    doc[section] = { ...asObject(doc[section]), [name]: entry };
    return this.apply(doc, 'the policy');
  }

  /** Deletes one entry; false when there was none. */
  remove(section: Section, name: string): boolean {
    const doc = this.export();
    const entries = asObject(doc[section]);
    if (!(name in entries)) return false;
    delete entries[name];
    doc[section] = entries;
    this.apply(doc, 'the policy');
    return true;
  }

  /** Pauses a queue, site or source (kept across restarts). */
  pause(kind: PauseKind, name: string): Pause {
    const at = Date.now();
    this.stmt.pause!.run(kind, name, at);
    const key = `${kind}:${name}`;
    const p = this.pauses.get(key) ?? { kind, name, since: new Date(at).toISOString() };
    this.pauses.set(key, p);
    for (const fn of this.listeners) fn(this.policy);
    return p;
  }

  /** Ends a pause; false when it was not paused. */
  resume(kind: PauseKind, name: string): boolean {
    const had = this.pauses.delete(`${kind}:${name}`);
    this.stmt.resume!.run(kind, name);
    if (had) for (const fn of this.listeners) fn(this.policy);
    return had;
  }

  isPaused(kind: PauseKind, name: string): boolean {
    return this.pauses.has(`${kind}:${name}`);
  }

  pausesOf(kind: PauseKind): Pause[] {
    return [...this.pauses.values()].filter((p) => p.kind === kind);
  }
}

export { SECTIONS };

function asObject(v: unknown): Record<string, unknown> {
  return v && typeof v === 'object' && !Array.isArray(v)
    ? { ...(v as Record<string, unknown>) }
    : {};
}

function hash(v: unknown): string {
  return createHash('sha256').update(JSON.stringify(v)).digest('hex');
}
