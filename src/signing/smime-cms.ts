/**
 * The detached CMS SignedData of an S/MIME signature (RFC 5652 §5, RFC 8551 §3.5): SHA-256,
 * signed attributes contentType, signingTime and messageDigest, the signer certificate and
 * its chain, no encapsulated content. node-forge builds the structure; the RSA operation is
 * node:crypto's (about 40 times faster than forge's JavaScript RSA).
 *
 * Two pieces are put in after forge: the certificates, and the signer's issuer and serial
 * number, both as the exact DER of the certificates. forge would re-encode them from its
 * parsed form (each name attribute in its own RDN, RSA certificates only), and a receiver
 * that finds different bytes cannot match the signer to its certificate.
 */
import { constants, privateEncrypt, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import type { SmimeCredential } from './smime-credential.js';

const { asn1 } = forge;

/** The DER pieces a credential contributes to every signature, prepared once. */
interface SignerDer {
  issuerAndSerial: forge.asn1.Asn1;
  certificates: forge.asn1.Asn1[];
}

const prepared = new WeakMap<SmimeCredential, SignerDer>();

// RFC 8017 §9.2 note 1: the DER DigestInfo prefix of a SHA-256 digest.
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

/** DER of a detached SignedData over `content`, signed by `cred` at `signingTime`. */
export function detachedSignedData(
  content: Buffer,
  cred: SmimeCredential,
  signingTime: Date,
): Buffer {
  const p7 = forge.pkcs7.createSignedData();
  p7.content = forge.util.createBuffer(content.toString('binary'));
  const signer = {
    key: rsaSigner(cred.privateKey),
    // Placeholders: replaced by the certificate's own DER below.
    issuer: [],
    serialNumber: '00',
    digestAlgorithm: forge.pki.oids.sha256,
    // Listed in DER SET OF order (by encoded length here), as DER requires (X.690 §11.6).
    authenticatedAttributes: [
      { type: forge.pki.oids.contentType, value: forge.pki.oids.data },
      { type: forge.pki.oids.signingTime, value: signingTime },
      { type: forge.pki.oids.messageDigest },
    ],
  };
  p7.addSigner(signer as unknown as Parameters<typeof p7.addSigner>[0]);
  p7.sign({ detached: true });
  const contentInfo = p7.toAsn1();
  withSignerDer(contentInfo, signerDer(cred));
  return Buffer.from(asn1.toDer(contentInfo).getBytes(), 'binary');
}

/** forge calls key.sign(md) with the SHA-256 of the signed attributes already computed. */
function rsaSigner(key: KeyObject): { sign(md: forge.md.MessageDigest): string } {
  return {
    sign(md) {
      const digestInfo = Buffer.concat([
        SHA256_DIGEST_INFO,
        Buffer.from(md.digest().getBytes(), 'binary'),
      ]);
      // RSASSA-PKCS1-v1_5 (RFC 8017 §8.2) is the private-key operation on the DigestInfo.
      const padding = constants.RSA_PKCS1_PADDING;
      return privateEncrypt({ key, padding }, digestInfo).toString('binary');
    },
  };
}

/**
 * ContentInfo { contentType, [0] SignedData { version, digestAlgorithms, encapContentInfo,
 * [0] certificates, signerInfos { SignerInfo { version, sid, ... } } } }.
 */
function withSignerDer(contentInfo: forge.asn1.Asn1, der: SignerDer): void {
  const signedData = children(children(contentInfo)[1]!)[0]!;
  const fields = children(signedData);
  const signerInfo = children(fields[fields.length - 1]!)[0]!;
  children(signerInfo)[1] = der.issuerAndSerial;
  const certificates = asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, der.certificates);
  fields.splice(3, 0, certificates);
}

function children(node: forge.asn1.Asn1): forge.asn1.Asn1[] {
  return node.value as forge.asn1.Asn1[];
}

function signerDer(cred: SmimeCredential): SignerDer {
  let der = prepared.get(cred);
  if (!der) {
    const leaf = parseDer(cred.certificatePem);
    der = {
      issuerAndSerial: issuerAndSerial(leaf),
      certificates: [leaf, ...cred.chainPem.map(parseDer)],
    };
    prepared.set(cred, der);
  }
  return der;
}

// decodeBitStrings off: bit strings stay opaque octets, so toDer gives back the same bytes.
function parseDer(pem: string): forge.asn1.Asn1 {
  const der = forge.pem.decode(pem)[0]!.body;
  const options = { strict: true, decodeBitStrings: false };
  return asn1.fromDer(der, options as unknown as boolean);
}

/** RFC 5652 §10.2.4 IssuerAndSerialNumber, from TBSCertificate (RFC 5280 §4.1). */
function issuerAndSerial(certificate: forge.asn1.Asn1): forge.asn1.Asn1 {
  const tbs = children(children(certificate)[0]!);
  // The version field [0] EXPLICIT is absent in version 1 certificates.
  const at = tbs[0]!.tagClass === asn1.Class.CONTEXT_SPECIFIC ? 1 : 0;
  const serial = tbs[at]!;
  const issuer = tbs[at + 2]!;
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [issuer, serial]);
}
