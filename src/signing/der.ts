/**
 * The few DER (X.690) pieces the S/MIME code needs: writing elements of definite length, and
 * walking the elements of a certificate to take parts of it as its own bytes. Enough for CMS
 * SignedData and for reading one extension; not a general ASN.1 library.
 */

/** One element of a DER buffer: where it starts, where its contents start, where it ends. */
export interface DerElement {
  tag: number;
  start: number;
  contentStart: number;
  end: number;
}

/** One DER element: tag, definite length (X.690 §8.1.3), contents. */
export function tlv(tag: number, ...parts: Buffer[]): Buffer {
  const length = parts.reduce((n, p) => n + p.length, 0);
  let head: Buffer;
  if (length < 0x80) head = Buffer.from([tag, length]);
  else {
    const bytes: number[] = [];
    for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n % 256);
    head = Buffer.from([tag, 0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([head, ...parts]);
}

export function sequence(...parts: Buffer[]): Buffer {
  return tlv(0x30, ...parts);
}

/** A DER SET OF: its elements in the order of their encodings (X.690 §11.6). */
export function setOf(elements: Buffer[]): Buffer {
  return tlv(0x31, ...[...elements].sort(Buffer.compare));
}

/** The contents of an element, without its tag and length. */
export function contentsOf(element: Buffer): Buffer {
  const e = elementAt(element, 0);
  return element.subarray(e.contentStart, e.end);
}

/** Bytes given in hexadecimal (object identifiers and constants written out). */
export function hex(text: string): Buffer {
  return Buffer.from(text, 'hex');
}

/** The element at `start`; throws on a length that runs past the end. */
export function elementAt(der: Buffer, start: number): DerElement {
  const tag = der[start];
  const first = der[start + 1];
  if (tag === undefined || first === undefined) throw new Error('DER ends inside an element');
  let length = first;
  let contentStart = start + 2;
  if (first >= 0x80) {
    const count = first & 0x7f;
    if (count === 0 || count > 4) throw new Error('DER length of an unsupported form');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (der[contentStart + i] ?? 0);
    contentStart += count;
  }
  const end = contentStart + length;
  if (end > der.length) throw new Error('DER element runs past its end');
  return { tag, start, contentStart, end };
}

/** The elements inside a constructed element, in order. */
export function childrenOf(der: Buffer, parent: DerElement): DerElement[] {
  const out: DerElement[] = [];
  for (let at = parent.contentStart; at < parent.end; at = out[out.length - 1]!.end) {
    out.push(elementAt(der, at));
  }
  return out;
}

/** The bytes of an element, tag and length included. */
export function bytesOf(der: Buffer, e: DerElement): Buffer {
  return der.subarray(e.start, e.end);
}

/**
 * TBSCertificate's fields by name (RFC 5280 §4.1), as elements of the certificate's DER; the
 * version and the extensions are absent from a version 1 certificate.
 */
export function tbsFields(certificate: Buffer) {
  const outer = elementAt(certificate, 0);
  const tbs = elementAt(certificate, outer.contentStart);
  const fields = childrenOf(certificate, tbs);
  const at = fields[0]?.tag === 0xa0 ? 1 : 0; // [0] EXPLICIT version
  return {
    serialNumber: fields[at]!,
    issuer: fields[at + 2]!,
    /** [3] EXPLICIT Extensions, when present. */
    extensions: fields.slice(at + 6).find((f) => f.tag === 0xa3),
  };
}
