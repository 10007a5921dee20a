/**
 * The suppression list as CSV (RFC 4180): "address,reason,source,at" with a header line, for
 * export, and the same (or just addresses, one per line) for import. A line that cannot be
 * read is reported with its number and skipped; the others are imported.
 */
import { addressProblem } from '../intake/addresses.js';
import { SUPPRESSION_REASONS, type Suppression, type SuppressionReason } from './suppression.js';

export const CSV_HEADER = 'address,reason,source,at';

/** Entries as CSV lines, header first. */
export function toCsv(entries: Suppression[]): string {
  const rows = entries.map((e) => [e.address, e.reason, e.source, e.at].map(csvField).join(','));
  return [CSV_HEADER, ...rows].join('\r\n') + '\r\n';
}

/** What an import read: the entries, and the lines it could not. */
export interface ParsedCsv {
  entries: { address: string; reason: SuppressionReason; source: string }[];
  errors: { line: number; message: string }[];
}

/** Reads CSV text (addresses with an optional reason); `source` names the import. */
export function parseCsv(text: string, source: string): ParsedCsv {
  const out: ParsedCsv = { entries: [], errors: [] };
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#') || (i === 0 && line.toLowerCase().startsWith('address'))) {
      return;
    }
    const [address = '', reason = 'manual'] = splitCsv(line);
    const problem = addressProblem(address);
    if (problem) return void out.errors.push({ line: i + 1, message: `${address}: ${problem}` });
    if (!(SUPPRESSION_REASONS as readonly string[]).includes(reason)) {
      const allowed = SUPPRESSION_REASONS.join(', ');
      return void out.errors.push({
        line: i + 1,
        message: `reason "${reason}"; allowed: ${allowed}`,
      });
    }
    out.entries.push({ address, reason: reason as SuppressionReason, source });
  });
  return out;
}

function csvField(v: string): string {
  return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

/** One CSV line's fields (quoted fields may hold commas and doubled quotes). */
function splitCsv(line: string): string[] {
  const fields: string[] = [];
  const re = /\s*(?:"((?:[^"]|"")*)"|([^,]*))\s*(?:,|$)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line)) && m[0] !== '') {
    fields.push(m[1] !== undefined ? m[1].replace(/""/g, '"') : m[2]!.trim());
    if (re.lastIndex >= line.length) break;
  }
  return fields;
}
