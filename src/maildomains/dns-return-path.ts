// The return-path part of the DNS status: bounces to the envelope-sender domain must reach
// our bounce host, through an MX record pointing at it or a CNAME to it.
import type { Answer, DnsAsker } from './dns-query.js';
import { sameHost } from './dns-names.js';
import { errorRow, row, type RowBase } from './dns-row.js';
import type { DnsRecordStatus } from './dns-types.js';

// The preference given in a suggested MX record; any value works for a single MX.
const MX_PREFERENCE = 10;

type Mx = { exchange: string; priority: number };

/** "MX 10 bounce.example.net", or "MX 0 ." for a Null MX (RFC 7505). */
function describeMx(mx: Mx): string {
  return `MX ${mx.priority} ${mx.exchange === '' ? '.' : mx.exchange}`;
}

/** Checks that returnPath routes mail to bounceHost (or anywhere, when no host is given). */
export async function checkReturnPath(
  returnPath: string,
  bounceHost: string | undefined,
  ask: DnsAsker,
): Promise<DnsRecordStatus> {
  const expected = bounceHost
    ? `MX ${MX_PREFERENCE} ${bounceHost} (or CNAME ${bounceHost})`
    : 'an MX record';
  const base: RowBase = { kind: 'return-path', name: returnPath, expected };
  const [cname, mx] = await Promise.all([ask.cname(returnPath), ask.mx(returnPath)]);
  const found = [
    ...(cname.kind === 'found' ? cname.values.map((c) => `CNAME ${c}`) : []),
    ...(mx.kind === 'found' ? mx.values.map(describeMx) : []),
  ];
  const target = cname.kind === 'found' ? cname.values[0] : undefined;
  if (bounceHost && target !== undefined && sameHost(target, bounceHost)) {
    return row(base, 'ok', { found, detail: `${returnPath} is a CNAME to ${bounceHost}.` });
  }
  const failed = [cname, mx].find((a) => a.kind === 'error');
  if (failed?.kind === 'error') return errorRow(base, failed.reason, found);
  return judgeMx(base, bounceHost, target, mx, found);
}

/** The verdict once the CNAME, if any, is not the bounce host and no lookup failed. */
function judgeMx(
  base: RowBase,
  bounceHost: string | undefined,
  cnameTarget: string | undefined,
  mx: Answer<Mx>,
  found: string[],
): DnsRecordStatus {
  const records = mx.kind === 'found' ? mx.values : [];
  const fix = bounceFix(base.name, bounceHost);
  // Limitation: a name without MX but with an address is still reachable through the implicit
  // MX (RFC 5321 §5.1); we report it missing, since a bounce domain should say where it goes.
  if (records.length === 0 && cnameTarget === undefined) {
    const detail = `${base.name} has neither MX nor CNAME, so bounces to it cannot be delivered.`;
    return row(base, 'missing', { found, detail, fix });
  }
  if (records.some((r) => r.exchange === '')) {
    const detail = `${base.name} publishes a Null MX (RFC 7505): it refuses all mail, bounces too.`;
    return row(base, 'wrong', { found, detail, fix });
  }
  const stray = bounceHost ? records.filter((r) => !sameHost(r.exchange, bounceHost)) : [];
  if (records.length > 0 && stray.length === 0) {
    const detail = bounceHost
      ? `Every MX of ${base.name} is ${bounceHost}.`
      : `${base.name} has an MX; no bounce host is configured to compare it with.`;
    return row(base, 'ok', { found, detail });
  }
  const elsewhere = cnameTarget !== undefined ? `a CNAME to ${cnameTarget}` : 'MX records';
  const hosts = stray.map((r) => r.exchange).join(', ') || 'no MX host';
  const want = bounceHost ? `, not ${bounceHost}` : '';
  const detail = `${base.name} has ${elsewhere} leading to ${hosts}${want}.`;
  return row(base, 'wrong', { found, detail, fix });
}

/** What to publish so bounces reach the bounce host. */
function bounceFix(name: string, bounceHost: string | undefined): string {
  if (!bounceHost) return `Publish an MX record at ${name} for the host that receives bounces.`;
  return (
    `Make the only MX of ${name} "${MX_PREFERENCE} ${bounceHost}", or, if ${name} has ` +
    `no other records, make it a CNAME to ${bounceHost}.`
  );
}
