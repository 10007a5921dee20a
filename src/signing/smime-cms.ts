/**
 * The detached CMS SignedData of an S/MIME signature (RFC 5652 §5, RFC 8551 §3.5): SHA-256,
 * signed attributes contentType, signingTime and messageDigest, the signer certificate and
 * its chain, no encapsulated content.
 *
 * Written as DER here rather than built by node-forge's pkcs7: forge hashes the content in
 * JavaScript (about 20 ms a megabyte, on the event loop) and re-encodes the certificates and
 * the signer's issuer from its parsed form (each name attribute in its own RDN), and a
 * receiver that finds other bytes than the certificate's cannot match the signer to it. Here
 * node:crypto hashes and signs, and the certificates, the issuer and the serial number go in
 * as the certificate's own bytes.
 */
import { X509Certificate, createHash, sign, type KeyObject } from 'node:crypto';
import type { SmimeCredential } from './smime-credential.js';

/** The DER pieces a credential contributes to every signature, prepared once. */
interface SignerDer {
  /** IssuerAndSerialNumber (RFC 5652 §10.2.4). */
  issuerAndSerial: Buffer;
  /** The signer certificate and its chain, each as its own DER. */
  certificates: Buffer[];
}

const prepared = new WeakMap<SmimeCredential, SignerDer>();

// Object identifiers and constants, as DER.
const OID = {
  signedData: der('06092a864886f70d010702'), // 1.2.840.113549.1.7.2
  data: der('06092a864886f70d010701'), // 1.2.840.113549.1.7.1
  sha256: der('0609608648016503040201'), // 2.16.840.1.101.3.4.2.1
  rsaEncryption: der('06092a864886f70d010101'), // 1.2.840.113549.1.1.1
  contentType: der('06092a864886f70d010903'), // 1.2.840.113549.1.9.3
  messageDigest: der('06092a864886f70d010904'), // 1.2.840.113549.1.9.4
  signingTime: der('06092a864886f70d010905'), // 1.2.840.113549.1.9.5
};
const NULL = der('0500');
const VERSION_1 = der('020101');

/** DER of a detached SignedData over `content`, signed by `cred` at `signingTime`. */
export function detachedSignedData(
  content: Buffer,
  cred: SmimeCredential,
  signingTime: Date,
): Buffer {
  const signer = signerDer(cred);
  const sha256 = sequence(OID.sha256, NULL);
  const attributes = [
    attribute(OID.contentType, OID.data),
    attribute(OID.signingTime, time(signingTime)),
    attribute(OID.messageDigest, tlv(0x04, createHash('sha256').update(content).digest())),
  ];
  // The signature covers the attributes as a SET OF (tag 0x31); the SignerInfo carries the
  // same contents under [0] IMPLICIT (RFC 5652 §5.4).
  const signedAttributes = setOf(attributes);
  const signature = rsaSign(cred.privateKey, signedAttributes);
  const signerInfo = sequence(
    VERSION_1, // sid is IssuerAndSerialNumber
    signer.issuerAndSerial,
    sha256,
    tlv(0xa0, signedAttributes.subarray(headerLength(signedAttributes))),
    sequence(OID.rsaEncryption, NULL),
    tlv(0x04, signature),
  );
  const signedData = sequence(
    VERSION_1,
    setOf([sha256]),
    sequence(OID.data), // detached: no eContent
    tlv(0xa0, ...signer.certificates),
    setOf([signerInfo]),
  );
  return sequence(OID.signedData, tlv(0xa0, signedData));
}

/** RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 §8.2). */
function rsaSign(key: KeyObject, data: Buffer): Buffer {
  return sign('sha256', data, key);
}

/** Attribute ::= SEQUENCE { attrType OID, attrValues SET OF value } */
function attribute(type: Buffer, value: Buffer): Buffer {
  return sequence(type, setOf([value]));
}

/**
 * signingTime (RFC 5652 §11.3): UTCTime for the years 1950 to 2049, GeneralizedTime after,
 * in UTC to the second.
 */
function time(at: Date): Buffer {
  const iso = at.toISOString(); // 2026-12-04T18:56:59.123Z
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '') + 'Z'; // 20261204185659Z
  const year = at.getUTCFullYear();
  if (year >= 1950 && year < 2050) return tlv(0x17, Buffer.from(digits.slice(2), 'latin1'));
  return tlv(0x18, Buffer.from(digits, 'latin1'));
}

function sequence(...parts: Buffer[]): Buffer {
  return tlv(0x30, ...parts);
}

/** A DER SET OF: its elements in the order of their encodings (X.690 §11.6). */
function setOf(elements: Buffer[]): Buffer {
  return tlv(0x31, ...[...elements].sort(Buffer.compare));
}

/** One DER element: tag, definite length (X.690 §8.1.3), contents. */
function tlv(tag: number, ...parts: Buffer[]): Buffer {
  const length = parts.reduce((n, p) => n + p.length, 0);
  let head: Buffer;
  if (length < 0x80) head = Buffer.from([tag, length]);
  else {
    const bytes: number[] = [];
    for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
    head = Buffer.from([tag, 0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([head, ...parts]);
}

/** How many bytes of an element are its tag and length. */
function headerLength(element: Buffer): number {
  const first = element[1]!;
  return first < 0x80 ? 2 : 2 + (first & 0x7f);
}

function der(hex: string): Buffer {
  return Buffer.from(hex, 'hex');
}

function signerDer(cred: SmimeCredential): SignerDer {
  let signer = prepared.get(cred);
  if (!signer) {
    const leaf = new X509Certificate(cred.certificatePem).raw;
    signer = {
      issuerAndSerial: issuerAndSerial(leaf),
      certificates: [leaf, ...cred.chainPem.map((pem) => new X509Certificate(pem).raw)],
    };
    prepared.set(cred, signer);
  }
  return signer;
}

/**
 * RFC 5652 §10.2.4 IssuerAndSerialNumber: the issuer and serial number of TBSCertificate
 * (RFC 5280 §4.1) as the certificate's own bytes.
 */
function issuerAndSerial(certificate: Buffer): Buffer {
  const tbs = element(certificate, element(certificate, 0).contentStart);
  let at = tbs.contentStart;
  // The version field [0] EXPLICIT is absent in version 1 certificates.
  if (certificate[at] === 0xa0) at = element(certificate, at).end;
  const serial = element(certificate, at);
  const signatureAlgorithm = element(certificate, serial.end);
  const issuer = element(certificate, signatureAlgorithm.end);
  return sequence(
    certificate.subarray(issuer.start, issuer.end),
    certificate.subarray(serial.start, serial.end),
  );
}

/** Where the DER element at `start` has its contents and where it ends. */
function element(der: Buffer, start: number): { start: number; contentStart: number; end: number } {
  const first = der[start + 1];
  if (first === undefined) throw new Error('certificate DER ends early');
  let length = first;
  let contentStart = start + 2;
  if (first >= 0x80) {
    const count = first & 0x7f;
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + der[contentStart + i]!;
    contentStart += count;
  }
  const end = contentStart + length;
  if (end > der.length) throw new Error('certificate DER element runs past its end');
  return { start, contentStart, end };
}
