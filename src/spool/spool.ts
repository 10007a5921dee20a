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
  /** Milliseconds the queue lets a recipient live. */
  maxAgeMs: number;
  via: 'smtp' | 'http';
  client: ReceptionRecord['client'];
}

/** A recipient waiting for delivery, as the scheduler and dispatcher see it. */
export interface QueuedRecipient {
  id: string;
  messageId: string;
  address: string;
  domain: string;
  queue: string;
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
   * Stores messages atomically (all or none) and resolves once they are durable. `leased`
   * says whether the scheduler takes the recipients into memory now.
   */
  async accept(messages: NewMessage[], leased: boolean): Promise<AcceptedMessage[]> {
    const at = this.now();
    const accepted = messages.map((m) => this.prepareAccepted(m, at));
    const stored: StoredRecord[] = [];
    await this.committer.submit(() => {
      messages.forEach((m, i) => stored.push(this.insertMessage(m, accepted[i]!, leased)));
    });
    for (const a of accepted) this.bumpQueue(a.recipients[0]!.queue, a.recipients.length);
    if (leased) {
      messages.forEach((m, i) => {
        this.bodies.hold(accepted[i]!.messageId, m.body, m.recipients.length);
      });
    }
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
        this.stmt.defer!.run(r.attempts, nextAt, JSON.stringify(lastReply), r.id);
        stored = this.recorder.insert(record);
      },
      () => {
        this.recorder.publish([stored]);
        onDone?.();
      },
      (err) => this.onWriteError(err),
    );
  }

  /** Takes up to `limit` recipients due by `now` out of the store, leasing them. */
  takeDue(now: number, limit: number): QueuedRecipient[] {
    const rows = this.stmt.due!.all(now, limit) as DueRow[];
    if (rows.length === 0) return [];
    this.db.transaction(() => {
      for (const row of rows) this.stmt.lease!.run(row.id);
    })();
    return rows.map((row) => toQueued(row, now));
  }

  /** When the earliest recipient waiting in the store is due, or null when none waits. */
  nextDueAt(): number | null {
    const row = this.stmt.nextDue!.get() as { t: number | null };
    return row.t;
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
        expires_at, leased) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    body: db.prepare('SELECT body FROM messages WHERE id = ?'),
    deleteRecipient: db.prepare('DELETE FROM recipients WHERE id = ?'),
    deleteMessageIfDone: db.prepare(
      `DELETE FROM messages WHERE id = ?
        AND NOT EXISTS (SELECT 1 FROM recipients WHERE message_id = ?)`,
    ),
    defer: db.prepare(
      `UPDATE recipients SET attempts = ?, next_attempt_at = ?, last_reply = ?, leased = 0
        WHERE id = ?`,
    ),
    due: db.prepare(
      `SELECT r.id, r.message_id, r.address, r.domain, r.queue, r.attempts, r.expires_at,
          r.last_reply, m.sender, m.size, m.received_at
        FROM recipients r JOIN messages m ON m.id = r.message_id
        WHERE r.leased = 0 AND r.next_attempt_at <= ?
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
    nextDue: db.prepare('SELECT MIN(next_attempt_at) AS t FROM recipients WHERE leased = 0'),
    releaseAll: db.prepare('UPDATE recipients SET leased = 0 WHERE leased = 1'),
    countByQueue: db.prepare('SELECT queue, COUNT(*) AS n FROM recipients GROUP BY queue'),
  };
}
