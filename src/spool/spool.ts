/**
 * The spool: messages (stored once) and their recipients (tracked one by one) in the store.
 * A recipient row exists while the recipient waits or is being delivered; a final outcome
 * deletes it, and the message goes with its last recipient. "Leased" marks the recipients that
 * the scheduler holds in memory, so the due-index only shows what still waits in the store;
 * leases mean nothing across a restart and are cleared at start.
 */
import type { Statement } from 'better-sqlite3';
import type { SmtpReply } from '../delivery/reply.js';
import type { Recorder } from '../records/recorder.js';
import type { GridpostRecord, ReceptionRecord, StoredRecord } from '../records/types.js';
import type { Committer } from './committer.js';
import { adminRecord } from '../records/build.js';
import { BodyCache } from './body-cache.js';
import { newMessageId, recipientId } from './ids.js';
import type { Db } from './store.js';

/** A message offered to the spool by intake. `body` is the full RFC 5322 message, CRLF. */
export interface NewMessage {
  /** Message id chosen by intake (it appears in the Received field); made here when absent. */
  id?: string;
  sender: string;
  recipients: string[];
  body: Buffer;
  queue: string;
  /** The pool named by the injection call; the queue's pool when absent. */
  pool?: string;
  /** Milliseconds the queue lets a recipient live. */
  maxAgeMs: number;
  /** The suppression list's version when intake checked the recipients. */
  suppressionChecked?: number;
  via: 'smtp' | 'http';
  client: ReceptionRecord['client'];
  /** The maildomain of its From address, the checks that warned, and what signed it. */
  maildomain?: string;
  warnings?: ReceptionRecord['warnings'];
  signatures?: ReceptionRecord['signatures'];
}

/** A recipient waiting for delivery, as the scheduler and dispatcher see it. */
export interface QueuedRecipient {
  id: string;
  messageId: string;
  address: string;
  domain: string;
  queue: string;
  /** The pool chosen at injection or by an operator's move; the queue's pool when absent. */
  pool?: string;
  /** The egress source of the last attempt (kept when the pool does not rotate on retry). */
  source?: string;
  /** The site (MX rollup) of the last attempt, for operator actions by site. */
  site?: string;
  /** The suppression list's version when the address was last found not suppressed. */
  suppressionChecked?: number;
  sender: string;
  size: number;
  attempts: number;
  receivedAt: number;
  expiresAt: number;
  /** When this recipient became ready for its current attempt (for queued-time figures). */
  readyAt: number;
  /** The reply of the last failed attempt, if any. */
  lastReply?: SmtpReply;
}

/** An accepted message with its recipients. */
export interface AcceptedMessage {
  messageId: string;
  recipients: QueuedRecipient[];
}

/** The domain part of an address, lower-cased. */
export function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1).toLowerCase();
}

/** Durable storage of messages and recipient state. */
export class Spool {
  private readonly stmt: Record<string, Statement>;
  private readonly sizes = new Map<string, number>();
  /** Bodies of messages whose recipients are in memory now: saves a store read per attempt. */
  private readonly bodies = new BodyCache(64 * 1024 * 1024);

  constructor(
    private readonly db: Db,
    private readonly committer: Committer,
    private readonly recorder: Recorder,
    private readonly now: () => number = Date.now,
  ) {
    this.stmt = prepare(db);
    for (const row of this.stmt.countByQueue!.all() as { queue: string; n: number }[]) {
      this.sizes.set(row.queue, row.n);
    }
  }

  /**
   * Stores messages atomically (all or none) and resolves once they are durable. `leased[i]`
   * says whether the scheduler takes the recipients of message i into memory now.
   */
  async accept(messages: NewMessage[], leased: boolean[]): Promise<AcceptedMessage[]> {
    const at = this.now();
    const accepted = messages.map((m) => this.prepareAccepted(m, at));
    const stored: StoredRecord[] = [];
    await this.committer.submit(() => {
      messages.forEach((m, i) => stored.push(this.insertMessage(m, accepted[i]!, leased[i]!)));
    });
    for (const a of accepted) this.bumpQueue(a.recipients[0]!.queue, a.recipients.length);
    messages.forEach((m, i) => {
      if (leased[i]) this.bodies.hold(accepted[i]!.messageId, m.body, m.recipients.length);
    });
    this.recorder.publish(stored);
    return accepted;
  }

  private prepareAccepted(m: NewMessage, at: number): AcceptedMessage {
    const messageId = m.id ?? newMessageId(at);
    const recipients = m.recipients.map((address, i) => ({
      id: recipientId(messageId, i + 1),
      messageId,
      address,
      domain: domainOf(address),
      queue: m.queue,
      ...(m.pool ? { pool: m.pool } : {}),
      ...(m.suppressionChecked !== undefined ? { suppressionChecked: m.suppressionChecked } : {}),
      sender: m.sender,
      size: m.body.length,
      attempts: 0,
      receivedAt: at,
      expiresAt: at + m.maxAgeMs,
      readyAt: at,
    }));
    return { messageId, recipients };
  }

  private insertMessage(m: NewMessage, a: AcceptedMessage, leased: boolean): StoredRecord {
    const at = a.recipients[0]!.receivedAt;
    this.stmt.insertMessage!.run(a.messageId, m.sender, m.queue, at, m.body.length, m.body);
    for (const r of a.recipients) {
      this.stmt.insertRecipient!.run(
        r.id,
        r.messageId,
        r.address,
        r.domain,
        r.queue,
        at,
        r.expiresAt,
        leased ? 1 : 0,
        r.pool ?? null,
      );
    }
    return this.recorder.insert({
      type: 'Reception',
      at: new Date(at).toISOString(),
      messageId: a.messageId,
      queue: m.queue,
      sender: m.sender,
      size: m.body.length,
      recipients: a.recipients.map((r) => ({ id: r.id, address: r.address })),
      via: m.via,
      client: m.client,
      ...(m.maildomain ? { maildomain: m.maildomain } : {}),
      ...(m.signatures ? { signatures: m.signatures } : {}),
      ...(m.warnings ? { warnings: m.warnings } : {}),
    });
  }

  /** The stored body of a message, or null when the message is gone. */
  body(messageId: string): Buffer | null {
    const cached = this.bodies.get(messageId);
    if (cached) return cached;
    const row = this.stmt.body!.get(messageId) as { body: Buffer } | undefined;
    return row?.body ?? null;
  }

  /** Ends a recipient with its final record(s) (delivered, bounced, expired). Not awaited. */
  complete(r: QueuedRecipient, records: GridpostRecord[], onDone?: () => void): void {
    let stored: StoredRecord[];
    this.bodies.release(r.messageId);
    this.committer.submitDetached(
      () => {
        this.stmt.deleteRecipient!.run(r.id);
        this.stmt.deleteMessageIfDone!.run(r.messageId, r.messageId);
        stored = records.map((rec) => this.recorder.insert(rec));
      },
      () => {
        this.bumpQueue(r.queue, -1);
        this.recorder.publish(stored);
        onDone?.();
      },
      (err) => this.onWriteError(err),
    );
  }

  /** Recipients of a message still waiting or in delivery, with their retry state. */
  waiting(messageId: string): WaitingRecipient[] {
    const rows = this.stmt.waiting!.all(messageId) as WaitingRow[];
    return rows.map((w) => ({
      id: w.id,
      address: w.address,
      attempts: w.attempts,
      nextAttemptAt: new Date(w.next_attempt_at).toISOString(),
      expiresAt: new Date(w.expires_at).toISOString(),
      lastReply: w.last_reply ? (JSON.parse(w.last_reply) as SmtpReply) : null,
    }));
  }

  /** Ids of the messages in which `address` still waits (any case), at most `limit`. */
  messagesWaitingFor(address: string, limit = 1000): string[] {
    const rows = this.stmt.waitingFor!.all(address, limit) as { message_id: string }[];
    return rows.map((r) => r.message_id);
  }

  /** Stores a record that changes no queue state (a refusal at intake). Not awaited. */
  note(record: GridpostRecord): void {
    let stored: StoredRecord;
    this.committer.submitDetached(
      () => {
        stored = this.recorder.insert(record);
      },
      () => this.recorder.publish([stored]),
      (err) => this.onWriteError(err),
    );
  }

  /** Puts a recipient back in the store until `nextAt`, with the record of this attempt. */
  defer(
    r: QueuedRecipient,
    nextAt: number,
    lastReply: SmtpReply,
    record: GridpostRecord,
    onDone?: () => void,
  ): void {
    let stored: StoredRecord;
    this.bodies.release(r.messageId);
    this.committer.submitDetached(
      () => {
        const [source, site] = [r.source ?? null, r.site ?? null];
        this.stmt.defer!.run(r.attempts, nextAt, JSON.stringify(lastReply), source, site, r.id);
        stored = this.recorder.insert(record);
      },
      () => {
        this.recorder.publish([stored]);
        onDone?.();
      },
      (err) => this.onWriteError(err),
    );
  }

  /**
   * Puts a recipient back in the store until `nextAt` without counting an attempt and without
   * a record: it was never tried (its ready queue was full, paused, or it was moved).
   */
  release(r: QueuedRecipient, nextAt: number, onDone?: () => void): void {
    this.bodies.release(r.messageId);
    this.committer.submitDetached(
      () => {
        this.stmt.release!.run(
          nextAt,
          r.queue,
          r.pool ?? null,
          r.source ?? null,
          r.site ?? null,
          r.id,
        );
      },
      () => onDone?.(),
      (err) => this.onWriteError(err),
    );
  }

  /** Takes up to `limit` recipients of `queue` due by `now` out of the store, leasing them. */
  takeDue(queue: string, now: number, limit: number): QueuedRecipient[] {
    const rows = this.stmt.due!.all(queue, now, limit) as DueRow[];
    if (rows.length === 0) return [];
    this.db.transaction(() => {
      for (const row of rows) this.stmt.lease!.run(row.id);
    })();
    return rows.map((row) => toQueued(row, now));
  }

  /** When the earliest recipient of `queue` waiting in the store is due, or null. */
  nextDueAt(queue: string): number | null {
    const row = this.stmt.nextDue!.get(queue) as { t: number | null };
    return row.t;
  }

  /** The queues that have recipients in the store (waiting or leased). */
  storedQueues(): string[] {
    return [...this.sizes.entries()].filter(([, n]) => n > 0).map(([q]) => q);
  }

  /**
   * Recipients waiting in the store (not in memory) that match `f`, at most `limit`, oldest
   * due first. Operator actions (purge, move) go through these in batches.
   */
  selectWaiting(f: RecipientFilter, limit: number): QueuedRecipient[] {
    const { where, args } = filterSql(f);
    const rows = this.db
      .prepare(
        `SELECT r.id, r.message_id, r.address, r.domain, r.queue, r.pool, r.source, r.site,
            r.attempts, r.expires_at, r.last_reply, m.sender, m.size, m.received_at
          FROM recipients r JOIN messages m ON m.id = r.message_id
          WHERE r.leased = 0 ${where} ORDER BY r.id LIMIT ?`,
      )
      .all(...args, limit) as DueRow[];
    return rows.map((row) => toQueued(row, this.now()));
  }

  /** Makes every waiting recipient that matches `f` due now; returns how many. */
  retryNow(f: RecipientFilter, now: number): number {
    const { where, args } = filterSql(f, '');
    const sql = `UPDATE recipients SET next_attempt_at = ? WHERE leased = 0
      AND next_attempt_at > ? ${where}`;
    return this.db.prepare(sql).run(now, now, ...args).changes;
  }

  /**
   * Ends waiting recipients with an AdminAction record each (purge) or changes their queue
   * or pool (move); one transaction per batch. Resolves once durable.
   */
  async adminBatch(
    rs: QueuedRecipient[],
    action: 'purge' | 'move',
    to: { queue?: string; pool?: string },
    reason: string,
  ): Promise<void> {
    const at = this.now();
    const stored: StoredRecord[] = [];
    await this.committer.submit(() => {
      for (const r of rs) {
        if (action === 'purge') {
          this.stmt.deleteRecipient!.run(r.id);
          this.stmt.deleteMessageIfDone!.run(r.messageId, r.messageId);
        } else {
          this.stmt.move!.run(to.queue ?? r.queue, to.pool ?? r.pool ?? null, r.id);
        }
        stored.push(this.recorder.insert(adminRecord(r, action, to, reason, at)));
      }
    });
    for (const r of rs) {
      this.bumpQueue(r.queue, -1);
      if (action === 'move') this.bumpQueue(to.queue ?? r.queue, 1);
    }
    this.recorder.publish(stored);
  }

  /** Clears every lease: after a restart nothing is in memory. Returns how many. */
  releaseLeases(): number {
    return this.stmt.releaseAll!.run().changes;
  }

  /** Recipients waiting or in delivery, per queue. */
  queueSizes(): Map<string, number> {
    return new Map(this.sizes);
  }

  private bumpQueue(queue: string, delta: number): void {
    this.sizes.set(queue, (this.sizes.get(queue) ?? 0) + delta);
  }

  /** Set by the engine: what to do when a detached write fails (log it loudly). */
  onWriteError: (err: unknown) => void = (err) => {
    throw err;
  };
}

/** Which recipients an operator action applies to; every field given must match. */
export interface RecipientFilter {
  queue?: string;
  /** Destination domains. */
  domains?: string[];
  /**
   * A site: recipients whose last attempt went to it, and those of `siteDomains` (the
   * domains known to belong to it) that have not been tried yet.
   */
  site?: string;
  siteDomains?: string[];
  messageId?: string;
  recipientId?: string;
  /** Only recipients whose id sorts after this one (keyset paging through a large set). */
  afterId?: string;
}

/** The filter as SQL conditions on recipients named `alias` ("r." in a join, "" alone). */
function filterSql(f: RecipientFilter, alias = 'r.'): { where: string; args: unknown[] } {
  const parts: string[] = [];
  const args: unknown[] = [];
  const add = (sql: string, value: unknown): void => {
    parts.push(sql);
    args.push(value);
  };
  if (f.queue !== undefined) add(`${alias}queue = ?`, f.queue);
  if (f.messageId !== undefined) add(`${alias}message_id = ?`, f.messageId);
  if (f.recipientId !== undefined) add(`${alias}id = ?`, f.recipientId);
  if (f.afterId !== undefined) add(`${alias}id > ?`, f.afterId);
  if (f.domains !== undefined) {
    parts.push(`${alias}domain IN (${f.domains.map(() => '?').join(',') || "''"})`);
    args.push(...f.domains);
  }
  if (f.site !== undefined) {
    const known = f.siteDomains ?? [];
    const inKnown = known.length ? ` OR ${alias}domain IN (${known.map(() => '?').join(',')})` : '';
    parts.push(`(${alias}site = ?${inKnown})`);
    args.push(f.site, ...known);
  }
  return { where: parts.map((p) => `AND ${p}`).join(' '), args };
}

/** A recipient still in the queue, as the API shows it. */
export interface WaitingRecipient {
  id: string;
  address: string;
  attempts: number;
  nextAttemptAt: string;
  expiresAt: string;
  lastReply: SmtpReply | null;
}

interface WaitingRow {
  id: string;
  address: string;
  attempts: number;
  next_attempt_at: number;
  expires_at: number;
  last_reply: string | null;
}

interface DueRow {
  id: string;
  message_id: string;
  address: string;
  domain: string;
  queue: string;
  pool: string | null;
  source: string | null;
  site: string | null;
  attempts: number;
  expires_at: number;
  sender: string;
  size: number;
  received_at: number;
  last_reply: string | null;
}

function toQueued(row: DueRow, now: number): QueuedRecipient {
  return {
    id: row.id,
    messageId: row.message_id,
    address: row.address,
    domain: row.domain,
    queue: row.queue,
    ...(row.pool ? { pool: row.pool } : {}),
    ...(row.source ? { source: row.source } : {}),
    ...(row.site ? { site: row.site } : {}),
    sender: row.sender,
    size: row.size,
    attempts: row.attempts,
    receivedAt: row.received_at,
    expiresAt: row.expires_at,
    readyAt: now,
    ...(row.last_reply ? { lastReply: JSON.parse(row.last_reply) as SmtpReply } : {}),
  };
}

function prepare(db: Db): Record<string, Statement> {
  return {
    insertMessage: db.prepare(
      'INSERT INTO messages (id, sender, queue, received_at, size, body) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    insertRecipient: db.prepare(
      `INSERT INTO recipients (id, message_id, address, domain, queue, next_attempt_at,
        expires_at, leased, pool) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    body: db.prepare('SELECT body FROM messages WHERE id = ?'),
    deleteRecipient: db.prepare('DELETE FROM recipients WHERE id = ?'),
    deleteMessageIfDone: db.prepare(
      `DELETE FROM messages WHERE id = ?
        AND NOT EXISTS (SELECT 1 FROM recipients WHERE message_id = ?)`,
    ),
    defer: db.prepare(
      `UPDATE recipients SET attempts = ?, next_attempt_at = ?, last_reply = ?, source = ?,
        site = ?, leased = 0 WHERE id = ?`,
    ),
    release: db.prepare(
      `UPDATE recipients SET next_attempt_at = ?, queue = ?, pool = ?, source = ?, site = ?,
        leased = 0 WHERE id = ?`,
    ),
    move: db.prepare('UPDATE recipients SET queue = ?, pool = ? WHERE id = ?'),
    due: db.prepare(
      `SELECT r.id, r.message_id, r.address, r.domain, r.queue, r.pool, r.source, r.site,
          r.attempts, r.expires_at, r.last_reply, m.sender, m.size, m.received_at
        FROM recipients r JOIN messages m ON m.id = r.message_id
        WHERE r.leased = 0 AND r.queue = ? AND r.next_attempt_at <= ?
        ORDER BY r.next_attempt_at LIMIT ?`,
    ),
    waiting: db.prepare(
      `SELECT id, address, attempts, next_attempt_at, expires_at, last_reply
        FROM recipients WHERE message_id = ? ORDER BY id`,
    ),
    waitingFor: db.prepare(
      'SELECT DISTINCT message_id FROM recipients WHERE address = ? COLLATE NOCASE LIMIT ?',
    ),
    lease: db.prepare('UPDATE recipients SET leased = 1 WHERE id = ?'),
    nextDue: db.prepare(
      'SELECT MIN(next_attempt_at) AS t FROM recipients WHERE leased = 0 AND queue = ?',
    ),
    releaseAll: db.prepare('UPDATE recipients SET leased = 0 WHERE leased = 1'),
    countByQueue: db.prepare('SELECT queue, COUNT(*) AS n FROM recipients GROUP BY queue'),
  };
}
