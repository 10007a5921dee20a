/**
 * Webhooks that lose nothing. The outbox is the records table itself: each endpoint keeps a
 * cursor (the sequence number of the last record it acknowledged) in the store, and the
 * sender posts the records after it, in order and in batches, signed. A 2xx moves the cursor;
 * anything else is retried with exponential back-off (capped, and never given up: an endpoint
 * that is down for days gets everything once it is back, as long as the records are kept),
 * so every record reaches every endpoint exactly once per record id (`seq`), across restarts.
 *
 * Signature: header `X-Gridpost-Signature: t=<unix seconds>,v1=<hex>` where hex is
 * HMAC-SHA256(secret, `${t}.${body}`); receivers recompute it and refuse old timestamps.
 */
import type { Statement } from 'better-sqlite3';
import { createHmac, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Recorder } from '../records/recorder.js';
import type { Db } from '../spool/store.js';

/** An endpoint as stored (the secret never leaves the engine after creation). */
export interface WebhookEndpoint {
  name: string;
  url: string;
  /** Record types to send; empty = all. */
  types: string[];
  batchSize: number;
}

/** An endpoint's delivery state, as the API shows it. */
export interface WebhookState extends WebhookEndpoint {
  cursor: number;
  /** Records after the cursor that the endpoint still has to get (upper bound). */
  lag: number;
  state: 'idle' | 'sending' | 'retrying';
  failures: number;
  failingSince?: string;
  nextAttemptAt?: string;
  lastError?: string;
  delivered: number;
}

// Back-off after failures: 1 s doubling to at most 10 min (so a day of outage costs about
// 150 attempts); a failing endpoint is retried forever, as its records are still there.
const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 600_000;
// A POST that takes longer counts as failed (ms).
const POST_TIMEOUT_MS = 10_000;
// How long an endpoint with nothing to send waits before it looks again (ms); new records
// wake it at once (see poke()).
const IDLE_POLL_MS = 1000;

interface Runner {
  endpoint: WebhookEndpoint;
  secret: string;
  cursor: number;
  failures: number;
  failingSince?: number;
  nextAt?: number;
  lastError?: string;
  delivered: number;
  sending: boolean;
  timer: NodeJS.Timeout | null;
}

/** Keeps the endpoints and sends to them. */
export class Webhooks {
  private readonly runners = new Map<string, Runner>();
  private readonly stmt: Record<'all' | 'put' | 'del' | 'cursor', Statement>;
  private stopped = false;
  /** Aborts the POSTs under way at stop(): the store closes right after. */
  private readonly aborter = new AbortController();

  constructor(
    db: Db,
    private readonly recorder: Recorder,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    db.exec(`CREATE TABLE IF NOT EXISTS webhooks (name TEXT PRIMARY KEY, url TEXT NOT NULL,
      secret TEXT NOT NULL, types TEXT NOT NULL, batch_size INTEGER NOT NULL,
      cursor INTEGER NOT NULL)`);
    this.stmt = {
      all: db.prepare('SELECT * FROM webhooks'),
      put: db.prepare(`INSERT INTO webhooks (name, url, secret, types, batch_size, cursor)
        VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET url = excluded.url,
        types = excluded.types, batch_size = excluded.batch_size`),
      del: db.prepare('DELETE FROM webhooks WHERE name = ?'),
      cursor: db.prepare('UPDATE webhooks SET cursor = ? WHERE name = ?'),
    };
  }

  /** Loads the endpoints and starts sending. */
  start(): void {
    for (const row of this.stmt.all.all() as Row[]) this.run(fromRow(row), row.secret, row.cursor);
  }

  /**
   * Stops every sender. A POST under way is aborted and its batch sent again after the next
   * start (the receiver may then see it twice: it dedupes by seq).
   */
  stop(): void {
    this.stopped = true;
    this.aborter.abort();
    for (const r of this.runners.values()) if (r.timer) clearTimeout(r.timer);
  }

  /**
   * Adds or changes an endpoint. A new one starts at the current end of the records (or at
   * `from`), and gets a secret, returned this once.
   */
  put(e: WebhookEndpoint, from?: number): { secret?: string } {
    const existing = this.runners.get(e.name);
    const secret = existing?.secret ?? randomBytes(24).toString('base64url');
    const cursor = existing?.cursor ?? from ?? this.recorder.durableEnd();
    this.stmt.put.run(e.name, e.url, secret, JSON.stringify(e.types), e.batchSize, cursor);
    if (existing) {
      existing.endpoint = e;
      this.schedule(existing, 0);
      return {};
    }
    this.run(e, secret, cursor);
    return { secret };
  }

  /** Deletes an endpoint; false when there was none. */
  remove(name: string): boolean {
    const r = this.runners.get(name);
    if (!r) return false;
    if (r.timer) clearTimeout(r.timer);
    this.runners.delete(name);
    this.stmt.del.run(name);
    return true;
  }

  /** Every endpoint and its state. */
  states(): WebhookState[] {
    const end = this.recorder.durableEnd();
    return [...this.runners.values()].map((r) => ({
      ...r.endpoint,
      cursor: r.cursor,
      lag: Math.max(0, end - r.cursor),
      state: r.failures > 0 ? 'retrying' : r.sending ? 'sending' : 'idle',
      failures: r.failures,
      delivered: r.delivered,
      ...(r.failingSince ? { failingSince: new Date(r.failingSince).toISOString() } : {}),
      ...(r.nextAt && r.failures ? { nextAttemptAt: new Date(r.nextAt).toISOString() } : {}),
      ...(r.lastError ? { lastError: r.lastError } : {}),
    }));
  }

  /** The lowest cursor of all endpoints: records above it must be kept. */
  lowestCursor(): number | null {
    const cursors = [...this.runners.values()].map((r) => r.cursor);
    return cursors.length ? Math.min(...cursors) : null;
  }

  /** New records were published: idle endpoints look at once. */
  poke(): void {
    for (const r of this.runners.values()) if (!r.sending && r.failures === 0) this.schedule(r, 0);
  }

  private run(endpoint: WebhookEndpoint, secret: string, cursor: number): void {
    const r: Runner = {
      endpoint,
      secret,
      cursor,
      failures: 0,
      delivered: 0,
      sending: false,
      timer: null,
    };
    this.runners.set(endpoint.name, r);
    this.schedule(r, 0);
  }

  private schedule(r: Runner, ms: number): void {
    if (this.stopped || r.sending) return;
    if (r.timer) clearTimeout(r.timer);
    r.nextAt = this.now() + ms;
    r.timer = setTimeout(() => void this.sendOnce(r), ms);
    r.timer.unref();
  }

  /** Sends the next batch after the cursor; on success goes on at once, else backs off. */
  private async sendOnce(r: Runner): Promise<void> {
    r.timer = null;
    if (this.stopped || this.runners.get(r.endpoint.name) !== r) return;
    const e = r.endpoint;
    const { events, next } = this.recorder.events({
      after: r.cursor,
      limit: e.batchSize,
      types: e.types.length ? e.types : undefined,
    });
    if (events.length === 0) {
      this.advance(r, next);
      return this.schedule(r, IDLE_POLL_MS);
    }
    r.sending = true;
    const error = await this.post(r, JSON.stringify({ endpoint: e.name, events }));
    r.sending = false;
    if (this.stopped) return;
    if (error) return this.failed(r, error);
    r.delivered += events.length;
    r.failures = 0;
    r.failingSince = undefined;
    r.lastError = undefined;
    this.advance(r, next);
    this.schedule(r, 0);
  }

  private advance(r: Runner, cursor: number): void {
    if (cursor === r.cursor) return;
    r.cursor = cursor;
    this.stmt.cursor.run(cursor, r.endpoint.name);
  }

  private failed(r: Runner, error: string): void {
    r.failures++;
    r.failingSince ??= this.now();
    r.lastError = error;
    const delay = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** (r.failures - 1));
    if (r.failures === 1 || r.failures % 10 === 0) {
      this.log.warn({ webhook: r.endpoint.name, error, failures: r.failures }, 'webhook failing');
    }
    this.schedule(r, delay);
  }

  /** POSTs one signed batch; returns why it failed, or null. */
  private async post(r: Runner, body: string): Promise<string | null> {
    const t = Math.floor(this.now() / 1000);
    const mac = createHmac('sha256', r.secret).update(`${t}.${body}`).digest('hex');
    try {
      const res = await fetch(r.endpoint.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-gridpost-signature': `t=${t},v1=${mac}` },
        body,
        signal: AbortSignal.any([AbortSignal.timeout(POST_TIMEOUT_MS), this.aborter.signal]),
      });
      await res.arrayBuffer().catch(() => undefined);
      return res.ok ? null : `HTTP ${res.status}`;
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
  }
}

/** Checks a signature header against a body and secret (for receivers, and our tests). */
export function verifySignature(header: string, body: string, secret: string): number | null {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (!m) return null;
  const want = createHmac('sha256', secret).update(`${m[1]}.${body}`).digest('hex');
  return want === m[2] ? Number(m[1]) : null;
}

interface Row {
  name: string;
  url: string;
  secret: string;
  types: string;
  batch_size: number;
  cursor: number;
}

function fromRow(row: Row): WebhookEndpoint {
  return {
    name: row.name,
    url: row.url,
    types: JSON.parse(row.types) as string[],
    batchSize: row.batch_size,
  };
}
