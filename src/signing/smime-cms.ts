/**
 * The detached CMS SignedData of an S/MIME signature (RFC 5652 §5, RFC 8551 §3.5): SHA-256,
 * signed attributes contentType, signingTime and messageDigest, the signer certificate and
 * its chain, no encapsulated content.
 *
 * Written as DER here rather than built by node-forge's pkcs7: forge hashes the content in
 * JavaScript (about 20 ms a megabyte, on the event loop) and re-encodes the certificates and
 * the signer's issuer from its parsed form (each name attribute in its own RDN), and a
 * receiver that finds other bytes than the certificate's cannot match the signer to it. Here
 * node:crypto hashes and signs (RSA or ECDSA), and the certificates, the issuer and the serial
 * number go in as the certificate's own bytes.
 */
import { X509Certificate, createHash, sign, type KeyObject } from 'node:crypto';
import { bytesOf, contentsOf, hex, sequence, setOf, tbsFields, tlv } from './der.js';
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
  signedData: hex('06092a864886f70d010702'), // 1.2.840.113549.1.7.2
  data: hex('06092a864886f70d010701'), // 1.2.840.113549.1.7.1
  sha256: hex('0609608648016503040201'), // 2.16.840.1.101.3.4.2.1
  rsaEncryption: hex('06092a864886f70d010101'), // 1.2.840.113549.1.1.1
  ecdsaWithSha256: hex('06082a8648ce3d040302'), // 1.2.840.10045.4.3.2
  contentType: hex('06092a864886f70d010903'), // 1.2.840.113549.1.9.3
  messageDigest: hex('06092a864886f70d010904'), // 1.2.840.113549.1.9.4
  signingTime: hex('06092a864886f70d010905'), // 1.2.840.113549.1.9.5
};
const NULL = hex('0500');
const VERSION_1 = hex('020101');

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
  const signerInfo = sequence(
    VERSION_1, // sid is IssuerAndSerialNumber
    signer.issuerAndSerial,
    sha256,
    tlv(0xa0, contentsOf(signedAttributes)),
    signatureAlgorithm(cred.privateKey),
    tlv(0x04, sign('sha256', signedAttributes, cred.privateKey)),
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

/**
 * RSASSA-PKCS1-v1_5 (RFC 8017 §8.2; parameters NULL) or ECDSA with SHA-256 (RFC 5758 §3.2;
 * no parameters); node:crypto's sign gives ECDSA signatures in the DER form CMS wants.
 */
function signatureAlgorithm(key: KeyObject): Buffer {
  return key.asymmetricKeyType === 'ec'
    ? sequence(OID.ecdsaWithSha256)
    : sequence(OID.rsaEncryption, NULL);
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
  const digits = at.toISOString().slice(0, 19).replace(/[-T:]/g, '') + 'Z'; // 20261204185659Z
  const year = at.getUTCFullYear();
  if (year >= 1950 && year < 2050) return tlv(0x17, Buffer.from(digits.slice(2), 'latin1'));
  return tlv(0x18, Buffer.from(digits, 'latin1'));
}

function signerDer(cred: SmimeCredential): SignerDer {
  let signer = prepared.get(cred);
  if (!signer) {
    const leaf = new X509Certificate(cred.certificatePem).raw;
    const { issuer, serialNumber } = tbsFields(leaf);
    signer = {
      issuerAndSerial: sequence(bytesOf(leaf, issuer), bytesOf(leaf, serialNumber)),
      certificates: [leaf, ...cred.chainPem.map((pem) => new X509Certificate(pem).raw)],
    };
    prepared.set(cred, signer);
  }
  return signer;
}
