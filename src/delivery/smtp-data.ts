/**
 * The message body as it goes on the wire after DATA (RFC 5321 §4.5.2): dot-stuffed, every
 * line ending made CRLF, terminated by CRLF.CRLF, and grouped into bounded socket writes.
 */

// Bytes per socket write of the body: big enough for few syscalls, small enough that each
// drain wait (bounded by timeouts.dataBlock) covers a bounded amount of data.
const BLOCK_BYTES = 64 * 1024;

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const CRLF = Buffer.from('\r\n');
const STUFFED_DOT = Buffer.from('.');
/** The end of the data when the body already ends with a line break (or is empty). */
export const END_OF_DATA = Buffer.from('.\r\n');
const CRLF_END_OF_DATA = Buffer.from('\r\n.\r\n');

/**
 * The body as it goes on the wire, in pieces (mostly zero-copy slices of body): every line
 * starting with '.' gets one more (RFC 5321 §4.5.2), every bare CR or bare LF becomes CRLF
 * so no '\n.\n'-style sequence can end the data early at a lenient server (SMTP smuggling),
 * and the data ends with CRLF.CRLF.
 */
export function* dataPieces(body: Buffer): Generator<Buffer> {
  let from = 0; // first byte not yet yielded
  let pos = 0; // start of the current line
  let cr = body.indexOf(CR);
  let lf = body.indexOf(LF);
  while (pos < body.length) {
    if (body[pos] === DOT) {
      if (pos > from) yield body.subarray(from, pos);
      yield STUFFED_DOT;
      from = pos;
    }
    // Each search restarts only once passed, so the scan stays linear in the body size.
    if (cr !== -1 && cr < pos) cr = body.indexOf(CR, pos);
    if (lf !== -1 && lf < pos) lf = body.indexOf(LF, pos);
    if (cr === -1 && lf === -1) break;
    const brk = cr !== -1 && (lf === -1 || cr < lf) ? cr : lf;
    if (brk === cr && lf === cr + 1) {
      pos = lf + 1;
      continue;
    }
    if (brk > from) yield body.subarray(from, brk);
    yield CRLF;
    from = pos = brk + 1;
  }
  if (from < body.length) yield body.subarray(from);
  const last = body[body.length - 1];
  yield last === undefined || last === CR || last === LF ? END_OF_DATA : CRLF_END_OF_DATA;
}

/** dataPieces grouped into socket writes of at most BLOCK_BYTES (small pieces are copied). */
export function* dataBlocks(body: Buffer): Generator<Buffer> {
  let batch: Buffer[] = [];
  let size = 0;
  for (const piece of dataPieces(body)) {
    if (size + piece.length > BLOCK_BYTES && batch.length > 0) {
      yield joined(batch, size);
      batch = [];
      size = 0;
    }
    if (piece.length >= BLOCK_BYTES) {
      for (let at = 0; at < piece.length; at += BLOCK_BYTES) {
        yield piece.subarray(at, at + BLOCK_BYTES);
      }
      continue;
    }
    batch.push(piece);
    size += piece.length;
  }
  if (batch.length > 0) yield joined(batch, size);
}

/** One buffer of the pieces: the piece itself when alone (no copy). */
function joined(batch: Buffer[], size: number): Buffer {
  return batch.length === 1 && batch[0] ? batch[0] : Buffer.concat(batch, size);
}
