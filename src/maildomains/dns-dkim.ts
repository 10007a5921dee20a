// The DKIM part of the DNS status: per domain key, the TXT record at
// <selector>._domainkey.<domain> must hold our public key (RFC 6376 §3.6.2.1).
import type { DnsAsker } from './dns-query.js';
import { errorRow, quoted, row, type RowBase } from './dns-row.js';
import { parseTagList } from '../signing/tag-list.js';
import { compareRecord } from '../signing/dkim-key.js';
import { recordName } from './key-life.js';
import type { DnsKeyExpectation, DnsRecordStatus } from './dns-types.js';

// RFC 1035 §3.3.14: one TXT string holds 255 bytes; longer values need several strings.
const MAX_TXT_STRING_BYTES = 255;

// Key states (the maildomain store's): a retired key no longer signs and need not stay in DNS;
// a pending key does not sign yet and must be published before it is activated.
const RETIRED = 'retired';
const PENDING = 'pending';

// Tags compared for the verdict; others only earn a note.
const KEY_TAGS = new Set(['v', 'k', 'p']);

/** How one published record compares with ours. */
interface Comparison {
  match: boolean;
  /** Why it does not match, or notes on harmless differences when it does. */
  words: string[];
}

/** Checks the published TXT record of one domain key. */
export async function checkDkim(
  domain: string,
  key: DnsKeyExpectation,
  ask: DnsAsker,
): Promise<DnsRecordStatus> {
  const name = recordName({ domain, selector: key.selector });
  const base: RowBase = { kind: 'dkim', name, expected: key.record, selector: key.selector };
  const answer = await ask.txt(name);
  if (answer.kind === 'error') return errorRow(base, answer.reason);
  const found = answer.kind === 'found' ? answer.values : [];
  if (key.state === RETIRED) return retiredRow(base, found);
  if (found.length === 0) return missingRow(base, key.state);
  const comparisons = found.map((txt) => compareKey(txt, key));
  return judge(base, found, comparisons);
}

/** A retired key is fine published or not; say which. */
function retiredRow(base: RowBase, found: string[]): DnsRecordStatus {
  const detail =
    found.length === 0
      ? 'Retired key, not published: nothing more to do.'
      : 'Retired key, still published: harmless; remove the record once mail signed ' +
        'with it has stopped arriving anywhere (a few days).';
  return row(base, 'ok', { found, detail });
}

/** No TXT record at the selector name. */
function missingRow(base: RowBase, state: string): DnsRecordStatus {
  const when = state === PENDING ? ' once it is activated; publish it first' : '';
  return row(base, 'missing', {
    found: [],
    detail:
      `No TXT record at ${base.name}, so receivers cannot verify signatures ` +
      `of this key${when}.`,
    fix: `Publish TXT ${quoted(base.expected)} at ${base.name}.${splitNote(base.expected)}`,
  });
}

/** The advice for a value longer than one TXT string. */
function splitNote(value: string): string {
  if (Buffer.byteLength(value) <= MAX_TXT_STRING_BYTES) return '';
  return (
    ` The value is over ${MAX_TXT_STRING_BYTES} bytes: publish it as one TXT record of several ` +
    `quoted strings of at most ${MAX_TXT_STRING_BYTES} bytes (most DNS panels split it for you).`
  );
}

/** The verdict from every published record at the name. */
function judge(base: RowBase, found: string[], comparisons: Comparison[]): DnsRecordStatus {
  const matching = comparisons.findIndex((c) => c.match);
  if (matching >= 0 && found.length === 1) {
    const notes = comparisons[0]?.words ?? [];
    const detail = notes.length ? `p= and k= match; ${notes.join('; ')}.` : 'p= and k= match.';
    return row(base, 'ok', { found, detail });
  }
  if (matching >= 0) {
    return row(base, 'wrong', {
      found,
      detail:
        `${found.length} TXT records at ${base.name}; verifiers may use any one of them ` +
        '(RFC 6376 §3.6.2.2), so some signatures fail.',
      fix: `Delete the TXT records at ${base.name} other than ${quoted(base.expected)}.`,
    });
  }
  const why = comparisons.flatMap((c) => c.words.slice(0, 1));
  return row(base, 'wrong', {
    found,
    detail: `The published record is not our key: ${why.join('; ')}.`,
    fix:
      `Replace the TXT record at ${base.name} with ${quoted(base.expected)}.` +
      splitNote(base.expected),
  });
}

/**
 * Compares one published TXT value with our key by its tags, whatever their order: the verdict
 * is the signer's own (compareRecord, the same check that activates a pending key), and a
 * match carries notes on harmless differences in other tags.
 */
export function compareKey(published: string, key: DnsKeyExpectation): Comparison {
  const verdict = compareRecord(published, key.record);
  if (!verdict.matches) return { match: false, words: [verdict.detail] };
  const theirs = parseTagList(published);
  const ours = parseTagList(key.record);
  if (!theirs.ok || !ours.ok) return { match: true, words: [] };
  return { match: true, words: otherTagNotes(theirs.tags, ours.tags) };
}

/** Notes on tags other than v, k and p that differ, e.g. a t=y testing flag. */
function otherTagNotes(theirs: [string, string][], ours: [string, string][]): string[] {
  const a = new Map(theirs.filter(([n]) => !KEY_TAGS.has(n)));
  const b = new Map(ours.filter(([n]) => !KEY_TAGS.has(n)));
  const names = [...new Set([...a.keys(), ...b.keys()])];
  return names
    .filter((n) => a.get(n) !== b.get(n))
    .map((n) => {
      const them = a.has(n) ? `${n}=${a.get(n)}` : `no ${n}=`;
      return `published ${them}, ours ${b.has(n) ? `${n}=${b.get(n)}` : `has no ${n}=`}`;
    });
}
