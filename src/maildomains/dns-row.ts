// Building the status rows of the DNS status, so every check words its outcomes alike.
import type { DnsCheckStatus, DnsRecordStatus } from './dns-types.js';

/** The fields a check knows before it looks: what, where, and what should be there. */
export type RowBase = Pick<DnsRecordStatus, 'kind' | 'name' | 'expected' | 'selector' | 'source'>;

/** One status row; the optional selector and source are left out when absent. */
export function row(
  base: RowBase,
  status: DnsCheckStatus,
  parts: { found: string[]; detail: string; fix?: string },
): DnsRecordStatus {
  const out: DnsRecordStatus = { ...base, status, ...parts, fix: parts.fix ?? '' };
  if (out.selector === undefined) delete out.selector;
  if (out.source === undefined) delete out.source;
  return out;
}

/** The row for a temporary DNS failure: the record's state is unknown, not missing. */
export function errorRow(base: RowBase, reason: string, found: string[] = []): DnsRecordStatus {
  return row(base, 'error', {
    found,
    detail: `Temporary DNS failure: ${reason}, so whether the record is right is unknown.`,
    fix: `Check again later; if the failure persists, check the name servers of ${base.name}.`,
  });
}

/** A TXT value quoted for a fix sentence. */
export function quoted(value: string): string {
  return `"${value}"`;
}
