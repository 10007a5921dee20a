/**
 * DKIM canonicalisation (RFC 6376 §3.4) as byte-level passes: the message split into header
 * fields and body, the "simple" and "relaxed" forms of a header field, and the body's
 * canonical bytes fed straight into a hash without building the canonical body first.
 *
 * Written here rather than taken from a library because this pass runs once per message per
 * body form at full throughput: the body is sliced (zero-copy) when it needs no change, and
 * otherwise rewritten through one small reused buffer.
 */

/** One of the two canonicalisation algorithms of RFC 6376 §3.4. */
export type CanonMode = 'simple' | 'relaxed';

/** A c= value: header algorithm / body algorithm. */
export type Canonicalization = `${CanonMode}/${CanonMode}`;

/** Anything that takes the canonical bytes in order: a crypto Hash, or a collector in tests. */
export interface ByteSink {
  update(data: Buffer): unknown;
}

/** One header field of a message: its name in lower case and its raw text (latin1). */
export interface HeaderField {
  /** Lower-cased name, without whitespace before the colon. */
  readonly name: string;
  /** The field exactly as in the message, folding included, without its final CRLF. */
  readonly raw: string;
}

/** A message split at the first empty line (RFC 5322 §2.1). */
export interface SplitMessage {
  readonly fields: HeaderField[];
  /** The body: everything after the empty line (zero-copy slice of the message). */
  readonly body: Buffer;
}

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const CRLF = Buffer.from('\r\n');
const CRLF_CRLF = Buffer.from('\r\n\r\n');
const TWO_SPACES = Buffer.from('  ');
const SPACE_CRLF = Buffer.from(' \r\n');

// The relaxed body is rewritten through this buffer and flushed to the sink whenever it is
// full: 16 KiB keeps the number of hash updates small without holding a copy of the body.
// The sink copies what it is given before returning, so reusing the buffer is safe; all
// callers run synchronously on one thread.
const SCRATCH_BYTES = 16 * 1024;
const scratch = Buffer.allocUnsafe(SCRATCH_BYTES);

/**
 * The message as it will go on the wire: bare CR and bare LF made CRLF and a final CRLF added
 * when missing, as intake stores messages and as delivery sends them; and the empty line after
 * the header section added when there is none. The last changes nothing in meaning (the body
 * is empty either way) but every verifier then reads the empty body alike: OpenDKIM 2.11
 * hashes a missing body as nothing under "simple", where RFC 6376 §3.4.3 says CRLF. Returns
 * the input itself when it already has that form (the usual case, checked by native scans).
 */
export function wireForm(message: Buffer): Buffer {
  let wire = message;
  if (!isCleanCrlf(message)) {
    const text = message.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n');
    const tail = text === '' || text.endsWith('\r\n') ? '' : '\r\n';
    wire = Buffer.from(text + tail, 'latin1');
  }
  const hasEmptyLine = wire.indexOf(CRLF_CRLF) !== -1 || (wire[0] === CR && wire[1] === LF);
  return hasEmptyLine ? wire : Buffer.concat([wire, CRLF]);
}

/** True when every CR is followed by LF, every LF follows a CR, and the message ends in CRLF. */
function isCleanCrlf(message: Buffer): boolean {
  const n = message.length;
  if (n > 0 && (message[n - 2] !== CR || message[n - 1] !== LF)) return false;
  for (let lf = message.indexOf(LF); lf !== -1; lf = message.indexOf(LF, lf + 1)) {
    if (message[lf - 1] !== CR) return false;
  }
  for (let cr = message.indexOf(CR); cr !== -1; cr = message.indexOf(CR, cr + 1)) {
    if (message[cr + 1] !== LF) return false;
  }
  return true;
}

/**
 * Splits a CRLF message into header fields and body. Without an empty line the whole message
 * is header and the body is empty; a message that starts with an empty line has no fields.
 */
export function splitMessage(message: Buffer): SplitMessage {
  if (message[0] === CR && message[1] === LF) return { fields: [], body: message.subarray(2) };
  const blank = message.indexOf(CRLF_CRLF);
  const headerEnd = blank === -1 ? message.length : blank + 2;
  const body = blank === -1 ? message.subarray(message.length) : message.subarray(blank + 4);
  return { fields: parseFields(message.toString('latin1', 0, headerEnd)), body };
}

/** The fields of a header section; a line starting with WSP continues the field above it. */
function parseFields(header: string): HeaderField[] {
  const lines = header.split('\r\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const raws: string[] = [];
  for (const line of lines) {
    const folded = (line.startsWith(' ') || line.startsWith('\t')) && raws.length > 0;
    if (folded) raws[raws.length - 1] += '\r\n' + line;
    else raws.push(line);
  }
  return raws.map((raw) => ({ name: fieldName(raw), raw }));
}

/**
 * The lower-cased name of a raw field; '' for a line without a colon, which no h= entry can
 * then select. Whitespace before the colon (obsolete syntax, RFC 5322 §4.5) is not part of
 * the name.
 */
function fieldName(raw: string): string {
  const colon = raw.indexOf(':');
  return colon === -1 ? '' : raw.slice(0, colon).trimEnd().toLowerCase();
}

/** A header field in canonical form, CRLF included (RFC 6376 §3.4.1 and §3.4.2). */
export function canonicalField(field: HeaderField, mode: CanonMode): string {
  if (mode === 'simple') return field.raw + '\r\n';
  return relaxedField(field.raw) + '\r\n';
}

/**
 * The relaxed form of a raw field, without CRLF: name lower-cased, lines unfolded, runs of
 * WSP made one space, WSP around the colon and at the end removed (RFC 6376 §3.4.2).
 */
export function relaxedField(raw: string): string {
  const colon = raw.indexOf(':');
  if (colon === -1) return raw; // not a field (h= never selects it)
  const name = raw.slice(0, colon).trimEnd().toLowerCase();
  const value = raw
    .slice(colon + 1)
    .replace(/\r\n/g, '')
    .replace(/[ \t]+/g, ' ');
  return `${name}:${trimWsp(value)}`;
}

/** Removes leading and trailing SP and HTAB only (String#trim would also eat other spaces). */
function trimWsp(s: string): string {
  return s.replace(/^[ \t]+|[ \t]+$/g, '');
}

/**
 * Feeds the canonical body to the sink (RFC 6376 §3.4.3 and §3.4.4). The body must be in
 * wire form (see wireForm): lines end in CRLF.
 */
export function canonicalBody(body: Buffer, mode: CanonMode, sink: ByteSink): void {
  if (mode === 'simple') simpleBody(body, sink);
  else relaxedBody(body, sink);
}

/** Simple: the body unchanged but for empty lines at the end; an empty body becomes CRLF. */
function simpleBody(body: Buffer, sink: ByteSink): void {
  let end = body.length;
  while (end >= 2 && body[end - 2] === CR && body[end - 1] === LF) end -= 2;
  if (end > 0) sink.update(body.subarray(0, end));
  sink.update(CRLF);
}

/** Relaxed: WSP runs made one SP, WSP at line ends and empty lines at the end removed. */
function relaxedBody(body: Buffer, sink: ByteSink): void {
  const end = relaxedContentEnd(body);
  if (end === 0) return; // An empty body canonicalises to nothing (RFC 6376 erratum 1384).
  const content = body.subarray(0, end);
  if (needsRelaxing(content)) rewriteRelaxed(content, sink);
  else sink.update(content);
  sink.update(CRLF);
}

/**
 * Where the relaxed body's content ends: before the trailing lines that are empty or only WSP
 * and before the WSP at the end of the last line, so the content ends in neither WSP nor CRLF.
 */
function relaxedContentEnd(body: Buffer): number {
  let end = body.length;
  for (;;) {
    let q = end;
    while (q > 0 && (body[q - 1] === SP || body[q - 1] === HTAB)) q--;
    if (q >= 2 && body[q - 2] === CR && body[q - 1] === LF) end = q - 2;
    else return q;
  }
}

/** True when some byte must change: a tab, two WSP in a row, or WSP before a line end. */
function needsRelaxing(content: Buffer): boolean {
  return content.includes(HTAB) || content.includes(TWO_SPACES) || content.includes(SPACE_CRLF);
}

/**
 * Writes the relaxed lines of content to the sink. Only the WSP runs that change (a tab, two
 * or more WSP, WSP before CRLF) are rewritten: the bytes between them are copied as ranges
 * into the scratch buffer, so the loop itself only reads.
 */
function rewriteRelaxed(content: Buffer, sink: ByteSink): void {
  const out = new ScratchWriter(sink);
  const n = content.length;
  let from = 0; // first byte not yet written
  for (let i = 0; i < n; i++) {
    const c = content[i];
    if (c !== SP && c !== HTAB) continue;
    if (c === SP && !startsChange(content, i + 1)) continue; // a lone space stays
    let end = i + 1;
    while (content[end] === SP || content[end] === HTAB) end++;
    out.range(content, from, i);
    // The run becomes one SP, or nothing right before a line end.
    if (!(content[end] === CR && content[end + 1] === LF)) out.space();
    from = end;
    i = end - 1;
  }
  out.range(content, from, n);
  out.flush();
}

/** After a space at `at - 1`: true when the run must change (more WSP, or a line end). */
function startsChange(content: Buffer, at: number): boolean {
  const d = content[at];
  return d === SP || d === HTAB || (d === CR && content[at + 1] === LF);
}

/** Batches ranges and single spaces into the scratch buffer, flushing it to the sink. */
class ScratchWriter {
  private used = 0;

  constructor(private readonly sink: ByteSink) {}

  /** Writes source[from, to); a range bigger than the buffer goes to the sink directly. */
  range(source: Buffer, from: number, to: number): void {
    const length = to - from;
    if (length <= 0) return;
    if (length > SCRATCH_BYTES - this.used) {
      this.flush();
      if (length > SCRATCH_BYTES) return void this.sink.update(source.subarray(from, to));
    }
    source.copy(scratch, this.used, from, to);
    this.used += length;
  }

  space(): void {
    if (this.used === SCRATCH_BYTES) this.flush();
    scratch[this.used++] = SP;
  }

  flush(): void {
    if (this.used > 0) this.sink.update(scratch.subarray(0, this.used));
    this.used = 0;
  }
}
