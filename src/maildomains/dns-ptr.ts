// The PTR part of the DNS status: each egress address must have a PTR giving its source's
// HELO name, and that name must resolve back to the address (forward-confirmed reverse DNS,
// which many receivers require before they accept mail; RFC 8601 §3 calls it iprev).
import { isIPv6 } from 'node:net';
import { ptrName } from '../delivery/dns.js';
import type { DnsAsker } from './dns-query.js';
import { sameHost, sameIp } from './dns-names.js';
import { errorRow, row, type RowBase } from './dns-row.js';
import type { DnsRecordStatus, DnsSourceExpectation } from './dns-types.js';

/** Checks the reverse and forward DNS of one egress source. */
export async function checkPtr(
  source: DnsSourceExpectation,
  ask: DnsAsker,
): Promise<DnsRecordStatus> {
  const base: RowBase = {
    kind: 'ptr',
    name: ptrName(source.address),
    expected: `PTR ${source.helo}`,
    source: source.name,
  };
  const answer = await ask.ptr(source.address);
  if (answer.kind === 'error') return errorRow(base, answer.reason);
  if (answer.kind === 'missing') {
    return row(base, 'missing', {
      found: [],
      detail: `${source.address} has no PTR record; many receivers refuse mail from it.`,
      fix: ptrFix(source),
    });
  }
  const found = answer.values;
  if (!found.some((name) => sameHost(name, source.helo))) {
    return row(base, 'wrong', {
      found,
      detail: `The PTR of ${source.address} gives ${found.join(', ')}, not the HELO name ${source.helo}.`,
      fix: `${ptrFix(source)} Or make one of ${found.join(', ')} the source's HELO name.`,
    });
  }
  return forwardConfirm(base, source, found, ask);
}

/** Who sets a PTR: the holder of the address block, not the domain's DNS host. */
function ptrFix(source: DnsSourceExpectation): string {
  return (
    `Ask the holder of ${source.address} (the hosting provider or ISP) to set its PTR to ` +
    `${source.helo}.`
  );
}

/** The PTR matches the HELO name; does the HELO name resolve back to the address? */
async function forwardConfirm(
  base: RowBase,
  source: DnsSourceExpectation,
  found: string[],
  ask: DnsAsker,
): Promise<DnsRecordStatus> {
  const ipv6 = isIPv6(source.address);
  const type = ipv6 ? 'AAAA' : 'A';
  const forward = await ask.addresses(source.helo, ipv6);
  if (forward.kind === 'error') return errorRow(base, forward.reason, found);
  const addresses = forward.kind === 'found' ? forward.values : [];
  if (addresses.some((a) => sameIp(a, source.address))) {
    const detail = `${source.address} → ${source.helo} → ${source.address}: forward-confirmed.`;
    return row(base, 'ok', { found, detail });
  }
  const gives = addresses.length ? `resolves to ${addresses.join(', ')}` : `has no ${type} record`;
  return row(base, 'wrong', {
    found,
    detail: `The PTR gives ${source.helo}, which ${gives}, so it does not forward-confirm.`,
    fix: `Publish ${type} ${source.address} at ${source.helo}.`,
  });
}
