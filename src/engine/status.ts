/** Live status since start: counts of what the engine treated, fed from committed records. */
import type { StoredRecord } from '../records/types.js';

export interface StatusCounters {
  received: number;
  recipientsReceived: number;
  delivered: number;
  deferred: number;
  bounced: number;
  expired: number;
  rejected: number;
}

/** Counts records by type since the engine started. */
export class StatusCount {
  readonly startedAt = Date.now();
  readonly counters: StatusCounters = {
    received: 0,
    recipientsReceived: 0,
    delivered: 0,
    deferred: 0,
    bounced: 0,
    expired: 0,
    rejected: 0,
  };

  /** Adds committed records to the counts. */
  observe(records: StoredRecord[]): void {
    const c = this.counters;
    for (const r of records) {
      if (r.type === 'Reception') {
        c.received++;
        c.recipientsReceived += r.recipients.length;
      } else if (r.type === 'Delivery') c.delivered++;
      else if (r.type === 'TransientFailure') c.deferred++;
      else if (r.type === 'Bounce') c.bounced++;
      else if (r.type === 'Expiration') c.expired++;
      else if (r.type === 'Rejected') c.rejected++;
    }
  }
}
