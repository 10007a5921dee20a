/**
 * Writes a backlog of queued recipients straight into a new store (as a long-running engine
 * would have left it), in large transactions: the start of the scale benchmarks.
 */
import { openStore } from '../../src/spool/store.js';

/** The shape of a backlog. */
export interface Backlog {
  recipients: number;
  perMessage: number;
  /** The domain of recipient n (0-based, over the whole backlog). */
  domainOf: (n: number) => string;
  /** When every recipient is due (epoch ms), and the attempts already made. */
  dueAt: number;
  attempts: number;
  idPrefix: string;
}

/** Fills the store in dataDir; returns the milliseconds it took. */
export function fillBacklog(dataDir: string, b: Backlog): number {
  const started = performance.now();
  const db = openStore(dataDir);
  const body = Buffer.alloc(2048, 'x');
  const now = Date.now();
  const insertMessage = db.prepare(
    'INSERT INTO messages (id, sender, queue, received_at, size, body) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const insertRecipient = db.prepare(
    `INSERT INTO recipients (id, message_id, address, domain, queue, attempts, next_attempt_at,
      expires_at, leased) VALUES (?, ?, ?, ?, 'default', ?, ?, ?, 0)`,
  );
  const batch = db.transaction((from: number, to: number) => {
    for (let m = from; m < to; m++) {
      const id = `${b.idPrefix}${m.toString().padStart(9, '0')}`;
      insertMessage.run(id, 'bulk@sender.bench', 'default', now, body.length, body);
      for (let n = 1; n <= b.perMessage; n++) {
        const domain = b.domainOf(m * b.perMessage + n);
        const address = `u${m}-${n}@${domain}`;
        const expires = now + 86_400_000;
        insertRecipient.run(`${id}.${n}`, id, address, domain, b.attempts, b.dueAt, expires);
      }
    }
  });
  const messages = Math.ceil(b.recipients / b.perMessage);
  for (let m = 0; m < messages; m += 10_000) batch(m, Math.min(messages, m + 10_000));
  db.close();
  return performance.now() - started;
}
