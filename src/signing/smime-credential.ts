/**
 * Certified accounts' credentials: a sender address with its X.509 certificate, the chain
 * certificates receivers need to reach a root they trust, and the private key. Imported
 * once (checked: readable, key matches, RSA or ECDSA, a mail-signing certificate, for that
 * address, valid now), restored from storage, and asked before each message whether it may
 * sign.
 */
import type { KeyObject, X509Certificate } from 'node:crypto';
import { GridpostError } from '../errors/catalogue.js';
import {
  describeCertificate,
  normaliseAddress,
  type CertificateInfo,
  type ChainCertificateInfo,
} from './smime-certificate.js';
import { decodeCredential, type CredentialInput, type CredentialParts } from './smime-input.js';

export type { CertificateInfo, ChainCertificateInfo } from './smime-certificate.js';
export type { CredentialInput } from './smime-input.js';

/** A certified account's signing credential, parsed once and kept in memory. */
export interface SmimeCredential {
  readonly address: string;
  /** The signer certificate, PEM. */
  readonly certificatePem: string;
  /** Chain certificates, PEM (each ends with a newline), from the signer's issuer upwards. */
  readonly chainPem: string[];
  readonly privateKey: KeyObject;
  readonly info: CertificateInfo;
}

/** Why a credential may not sign a message now, with a text that says what to do. */
export interface SigningRefusal {
  code: 'E_CERT_ADDRESS_MISMATCH' | 'E_CERT_EXPIRED' | 'E_CERT_NOT_YET_VALID';
  text: string;
}

/** What storage keeps of a credential besides the key (the integrator's account row). */
export interface StoredCredential {
  address: string;
  certificatePem: string;
  /** The chain PEMs joined. */
  chainPem: string;
}

// RFC 8551 §6: signing agents use RSA keys of at least 2048 bits.
const MIN_RSA_BITS = 2048;
// RFC 8551 §2.2: ECDSA on the NIST curves P-256 (which receivers must support), P-384, P-521.
const EC_BITS = [256, 384, 521];
const DAY_MS = 86_400_000;

/** Describes what was given, judging nothing but readability (E_CERT_INVALID). */
export function inspectCredential(input: CredentialInput): CertificateInfo {
  const { leaf, chain, privateKey } = arrange(decodeCredential(input));
  return describeCertificate(leaf, privateKey, chain);
}

/** Imports a credential for `address`; throws GridpostError unless it can sign for it now. */
export function readCredential(
  input: CredentialInput,
  address: string,
  now: Date = new Date(),
): SmimeCredential {
  const credential = build(decodeCredential(input), address);
  const refusal = signingRefusal(credential, address, now);
  if (refusal) throw new GridpostError(refusal.code, refusal.text, { path: 'address' });
  return credential;
}

/** A stored credential read back; dates are not judged (an expired one still loads). */
export function restoreCredential(row: StoredCredential, keyPem: string): SmimeCredential {
  const pem = [row.certificatePem, row.chainPem, keyPem].join('\n');
  return build(decodeCredential({ pem }), row.address);
}

/** Null when `cred` may sign mail from `fromAddress` at `now`; else the refusal. */
export function signingRefusal(
  cred: SmimeCredential,
  fromAddress: string,
  now: Date,
): SigningRefusal | null {
  const { info } = cred;
  if (!info.addresses.includes(normaliseAddress(fromAddress))) {
    const listed = info.addresses.join(', ') || 'no mail address';
    return {
      code: 'E_CERT_ADDRESS_MISMATCH',
      text:
        `The certificate of ${cred.address} (${info.subject}) is for ${listed}, not ` +
        `${fromAddress}: send from an address it lists, ` +
        `or import a certificate for ${fromAddress}.`,
    };
  }
  return validityRefusal(cred, now);
}

/** A warning when the certificate or a chain certificate expires within `days` days. */
export function expiryWarning(cred: SmimeCredential, now: Date, days = 30): string | null {
  const first = [certificateDates(cred), ...cred.info.chain.map(chainDates)].sort(
    (a, b) => a.notAfter.getTime() - b.notAfter.getTime(),
  )[0]!;
  const left = first.notAfter.getTime() - now.getTime();
  if (left > days * DAY_MS) return null;
  const when =
    left <= 0
      ? `expired on ${iso(first.notAfter)}`
      : `expires on ${iso(first.notAfter)}, in ${Math.ceil(left / DAY_MS)} days`;
  return `${first.what} ${when}: ${first.fix}.`;
}

/** The signer, its chain and the key, checked to belong together and to be able to sign. */
function build(parts: CredentialParts, address: string): SmimeCredential {
  const { leaf, chain, privateKey } = arrange(parts);
  const info = describeCertificate(leaf, privateKey, chain);
  refuseUnusable(info);
  return {
    address,
    certificatePem: leaf.toString(),
    chainPem: chain.map((c) => c.toString()),
    privateKey,
    info,
  };
}

function refuseUnusable(info: CertificateInfo): void {
  const name = `The certificate ${info.subject}`;
  if (!info.keyMatches) {
    throw new GridpostError(
      'E_CERT_KEY_MISMATCH',
      `${name} does not belong to the private key given`,
    );
  }
  // Limitation: Ed25519 and RSA-PSS certificates (RFC 8419, RFC 4056) are refused; receivers'
  // support for them is thin, and the CMS encoder writes RSA and ECDSA signatures only.
  if (info.keyType === 'ec') {
    if (!EC_BITS.includes(info.keyBits ?? 0)) {
      const why = `has an EC key on a curve other than P-256, P-384 or P-521 (RFC 8551 §2.2)`;
      throw new GridpostError('E_CERT_UNSUPPORTED', `${name} ${why}`);
    }
  } else if (info.keyType !== 'rsa') {
    const why = `has a ${info.keyType.toUpperCase()} key; only RSA and ECDSA keys can sign here`;
    throw new GridpostError('E_CERT_UNSUPPORTED', `${name} ${why}`);
  } else if ((info.keyBits ?? 0) < MIN_RSA_BITS) {
    const why = `has a ${info.keyBits}-bit RSA key; at least ${MIN_RSA_BITS} bits (RFC 8551 §6)`;
    throw new GridpostError('E_CERT_UNSUPPORTED', `${name} ${why}`);
  }
  if (!info.emailProtection) {
    const why =
      'is not for signing email (extended key usage without emailProtection, or key usage without digitalSignature)';
    throw new GridpostError('E_CERT_PURPOSE', `${name} ${why}`);
  }
}

/**
 * Picks the signer (the certificate of the private key) and orders the others from its
 * issuer upwards, as receivers build the path. Certificates off that path are left out: no
 * receiver can use them to reach a root from this signer, and their dates must not matter.
 */
function arrange(parts: CredentialParts): {
  leaf: X509Certificate;
  chain: X509Certificate[];
  privateKey: KeyObject;
} {
  const { certificates, privateKey } = parts;
  const leaf =
    certificates.find((c) => matchesSafely(c, privateKey)) ??
    certificates.find((c) => !c.ca) ??
    certificates[0]!;
  const rest = certificates.filter((c) => c !== leaf);
  const chain: X509Certificate[] = [];
  for (let at = leaf; ;) {
    const issuer = rest.find((c) => !chain.includes(c) && issued(c, at));
    if (!issuer) break;
    chain.push(issuer);
    at = issuer;
  }
  return { leaf, chain, privateKey };
}

function issued(issuer: X509Certificate, cert: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

function matchesSafely(cert: X509Certificate, key: KeyObject): boolean {
  try {
    return cert.checkPrivateKey(key);
  } catch {
    return false;
  }
}

interface Dated {
  what: string;
  notBefore: Date;
  notAfter: Date;
  fix: string;
}

function certificateDates(cred: SmimeCredential): Dated {
  const { info } = cred;
  return {
    what: `The certificate of ${cred.address}`,
    notBefore: info.notBefore,
    notAfter: info.notAfter,
    fix: `renew it with its issuer (${info.issuer}) and import the new one`,
  };
}

function chainDates(c: ChainCertificateInfo): Dated {
  return {
    what: `The chain certificate ${c.subject}`,
    notBefore: c.notBefore,
    notAfter: c.notAfter,
    fix: "import the certificate again with its issuer's current chain",
  };
}

function validityRefusal(cred: SmimeCredential, now: Date): SigningRefusal | null {
  for (const d of [certificateDates(cred), ...cred.info.chain.map(chainDates)]) {
    if (now < d.notBefore) {
      const when = `${d.what} is valid only from ${iso(d.notBefore)}`;
      const text = `${when}: wait until then, or check this server's clock.`;
      return { code: 'E_CERT_NOT_YET_VALID', text };
    }
    if (now > d.notAfter) {
      return { code: 'E_CERT_EXPIRED', text: `${d.what} expired on ${iso(d.notAfter)}: ${d.fix}.` };
    }
  }
  return null;
}

function iso(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
