/**
 * Routing header fields for SMTP injection: an injector that cannot name a queue or a pool in
 * the SMTP envelope writes them as header fields (PowerMTA's x-virtual-mta works the same way):
 *
 *   X-Gridpost-Queue: transactional
 *   X-Gridpost-Pool: dedicated-42
 *
 * The fields are taken out of the message before it is stored, so no receiver ever sees them.
 * Only the header section is read; a folded value is unfolded.
 */

/** The queue and pool named by the header, and the message without those fields. */
export interface RoutingFields {
  raw: Buffer;
  queue?: string;
  pool?: string;
}

const FIELD = /^x-gridpost-(queue|pool)[ \t]*:(.*)$/i;

/** Takes the routing fields out of a message (CRLF or LF line ends). */
export function takeRoutingFields(raw: Buffer): RoutingFields {
  const end = headerEnd(raw);
  const header = raw.subarray(0, end).toString('latin1');
  if (!/^x-gridpost-(queue|pool)[ \t]*:/im.test(header)) return { raw };
  const lines = header.split(/(?<=\n)/);
  const kept: string[] = [];
  const found: { queue?: string; pool?: string } = {};
  for (let i = 0; i < lines.length; i++) {
    const m = FIELD.exec(lines[i]!.replace(/\r?\n$/, ''));
    if (!m) {
      kept.push(lines[i]!);
      continue;
    }
    let value = m[2]!;
    // Continuation lines (RFC 5322 §2.2.3) belong to the field.
    while (i + 1 < lines.length && /^[ \t]/.test(lines[i + 1]!)) value += lines[++i]!;
    found[m[1]!.toLowerCase() as 'queue' | 'pool'] = value.replace(/\s+/g, ' ').trim();
  }
  const rest = Buffer.concat([Buffer.from(kept.join(''), 'latin1'), raw.subarray(end)]);
  return { raw: rest, ...found };
}

/** Bytes of the header section, up to and including the blank line (or all of it). */
function headerEnd(raw: Buffer): number {
  const crlf = raw.indexOf('\r\n\r\n');
  const lf = raw.indexOf('\n\n');
  const ends = [crlf >= 0 ? crlf + 4 : -1, lf >= 0 ? lf + 2 : -1].filter((n) => n >= 0);
  return ends.length ? Math.min(...ends) : raw.length;
}
