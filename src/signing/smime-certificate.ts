/**
 * What an X.509 certificate says that matters for S/MIME signing: who it names, who issued
 * it, when it is valid, which mail addresses it is for, its key, and whether it may sign
 * mail at all. Read with node:crypto (any key type), so an unsupported certificate can still
 * be described before it is refused.
 */
import type { KeyObject, X509Certificate } from 'node:crypto';
import { domainToASCII } from 'node:url';
import { childrenOf, elementAt, hex, tbsFields } from './der.js';

/** A chain certificate, as far as signing cares: its name and validity. */
export interface ChainCertificateInfo {
  subject: string;
  notBefore: Date;
  notAfter: Date;
}

/** The facts of a signer certificate, for the API, the CLI and the signing checks. */
export interface CertificateInfo {
  /** Distinguished name, one attribute after the other, e.g. "CN=Alice, O=Example". */
  subject: string;
  issuer: string;
  /** Serial number in upper-case hexadecimal. */
  serial: string;
  /** SHA-256 fingerprint of the DER certificate, colon-separated upper-case hexadecimal. */
  fingerprint: string;
  notBefore: Date;
  notAfter: Date;
  /** Mail addresses it is for: subjectAltName rfc822Name, then subject emailAddress. */
  addresses: string[];
  /** Whether the private key given with it is the certificate's own. */
  keyMatches: boolean;
  /** node:crypto's name: 'rsa', 'rsa-pss', 'ec', 'ed25519', ... */
  keyType: string;
  /** RSA modulus length or elliptic-curve size in bits; null when unknown. */
  keyBits: number | null;
  /** Extended key usage and key usage allow signing mail (RFC 8550 §4.4.2, §4.4.4). */
  emailProtection: boolean;
  /** The chain certificates given with it, from the issuer of this one upwards. */
  chain: ChainCertificateInfo[];
}

const EKU_EMAIL_PROTECTION = '1.3.6.1.5.5.7.3.4';
const EKU_ANY = '2.5.29.37.0';
const CURVE_BITS: Record<string, number> = {
  prime256v1: 256,
  secp384r1: 384,
  secp521r1: 521,
};

/** Describes a certificate, with `key` the private key given with it (if any). */
export function describeCertificate(
  cert: X509Certificate,
  key: KeyObject | null,
  chain: X509Certificate[] = [],
): CertificateInfo {
  return {
    subject: oneLineName(cert.subject),
    issuer: oneLineName(cert.issuer),
    serial: cert.serialNumber.toUpperCase(),
    fingerprint: cert.fingerprint256,
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    addresses: certificateAddresses(cert),
    keyMatches: key !== null && keyMatches(cert, key),
    keyType: cert.publicKey.asymmetricKeyType ?? 'unknown',
    keyBits: keyBits(cert.publicKey),
    emailProtection: extendedUsageAllowsMail(cert) && keyUsageAllowsSigning(cert),
    chain: chain.map((c) => ({
      subject: oneLineName(c.subject),
      notBefore: new Date(c.validFrom),
      notAfter: new Date(c.validTo),
    })),
  };
}

/** Addresses compared as RFC 5280 §4.2.1.6 says: local part exact, domain case-insensitive. */
export function normaliseAddress(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 0) return address;
  const domain = address.slice(at + 1);
  return `${address.slice(0, at)}@${domainToASCII(domain) || domain.toLowerCase()}`;
}

// node:crypto prints a name one attribute per line.
function oneLineName(name: string): string {
  return name.split('\n').join(', ');
}

// Limitation: internationalised addresses (RFC 8398 SmtpUTF8Mailbox in an otherName) are not
// read, so a certificate for a UTF-8 local part never matches and its mail is not signed.
function certificateAddresses(cert: X509Certificate): string[] {
  const fromAltName = altNameEntries(cert.subjectAltName ?? '')
    .filter((e) => e.startsWith('email:'))
    .map((e) => e.slice('email:'.length));
  const subject = cert.toLegacyObject().subject as unknown as Record<string, string | string[]>;
  const inSubject = subject?.emailAddress ?? [];
  const fromSubject = Array.isArray(inSubject) ? inSubject : [inSubject];
  return [...new Set([...fromAltName, ...fromSubject].map(normaliseAddress))];
}

/**
 * Entries of node's subjectAltName text: "email:a@b, DNS:x". Since Node 17.3 a value with a
 * comma, quote or other special character is printed as a JSON string: email:"a,b@c".
 */
function altNameEntries(text: string): string[] {
  const entries: string[] = [];
  const entry = /([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/g;
  for (const m of text.matchAll(entry)) {
    const value = m[2]!.startsWith('"') ? (JSON.parse(m[2]!) as string) : m[2]!;
    entries.push(`${m[1]}:${value}`);
  }
  return entries;
}

function keyMatches(cert: X509Certificate, key: KeyObject): boolean {
  try {
    return cert.checkPrivateKey(key);
  } catch {
    return false; // node throws when the key types differ (an EC key for an RSA certificate)
  }
}

function keyBits(key: KeyObject): number | null {
  const details = key.asymmetricKeyDetails;
  if (details?.modulusLength) return details.modulusLength;
  return CURVE_BITS[details?.namedCurve ?? ''] ?? null;
}

// No extended key usage extension means no restriction (RFC 5280 §4.2.1.12).
function extendedUsageAllowsMail(cert: X509Certificate): boolean {
  const usages = cert.keyUsage; // node's name for the extended key usage OIDs
  if (!usages || usages.length === 0) return true;
  return usages.includes(EKU_EMAIL_PROTECTION) || usages.includes(EKU_ANY);
}

// 2.5.29.15, the key usage extension's OID, as DER.
const KEY_USAGE = hex('0603551d0f');
// KeyUsage bits (RFC 5280 §4.2.1.3) in the first octet after the unused-bits count.
const DIGITAL_SIGNATURE = 0x80;
const NON_REPUDIATION = 0x40;

/**
 * The key usage extension, when present, must allow digitalSignature or nonRepudiation
 * (RFC 8550 §4.4.2). node:crypto does not expose it, so it is read from the certificate's DER.
 * A certificate whose extensions cannot be read is taken as not allowing it.
 */
function keyUsageAllowsSigning(cert: X509Certificate): boolean {
  const der = cert.raw;
  try {
    const { extensions } = tbsFields(der);
    if (!extensions) return true;
    const list = childrenOf(der, elementAt(der, extensions.contentStart));
    for (const extension of list) {
      const [id, ...rest] = childrenOf(der, extension);
      if (!id || !der.subarray(id.start, id.end).equals(KEY_USAGE)) continue;
      const value = rest[rest.length - 1]!; // OCTET STRING holding the BIT STRING
      const bits = elementAt(der, value.contentStart);
      const first = bits.contentStart + 1 < bits.end ? der[bits.contentStart + 1]! : 0;
      return (first & (DIGITAL_SIGNATURE | NON_REPUDIATION)) !== 0;
    }
    return true;
  } catch {
    return false;
  }
}
