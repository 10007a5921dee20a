/**
 * What a maildomain's mail did over a window, read from the records: deliveries, those over
 * TLS, and recipients' complaints. A message belongs to the maildomain its Reception record
 * names.
 */
import type { Db } from '../spool/store.js';
import { COMPLAINT_FEEDBACK_TYPES } from '../records/types.js';

// Limitation: this joins the records of the window with their Reception records on demand; on
// an engine that keeps tens of millions of records it takes seconds. Counting per maildomain
// in the stats table, as outcomes are, would make it instant.
const SQL = `SELECT r.type AS type, COUNT(*) AS n,
    SUM(CASE WHEN json_extract(r.json, '$.tls') THEN 1 ELSE 0 END) AS tls
  FROM records r JOIN records m ON m.message_id = r.message_id AND m.type = 'Reception'
  WHERE r.at >= ? AND json_extract(m.json, '$.maildomain') = ?
    AND (r.type = 'Delivery' OR (r.type = 'Complaint'
      AND lower(json_extract(r.json, '$.feedbackType')) IN (SELECT value FROM json_each(?))))
  GROUP BY r.type`;

/** Deliveries, deliveries over TLS, and complaints of a maildomain's mail since `since`. */
export function maildomainUsage(db: Db, domain: string, since: number) {
  const rows = db.prepare(SQL).all(since, domain, JSON.stringify(COMPLAINT_FEEDBACK_TYPES)) as {
    type: string;
    n: number;
    tls: number;
  }[];
  const of = (t: string) => rows.find((r) => r.type === t);
  return {
    delivered: of('Delivery')?.n ?? 0,
    deliveredTls: of('Delivery')?.tls ?? 0,
    complaints: of('Complaint')?.n ?? 0,
  };
}
