/**
 * Domain keys: DKIM key pairs generated or imported, their size, and their public half as the
 * DNS TXT record a maildomain publishes at SELECTOR._domainkey.DOMAIN (RFC 6376 §3.6.1, RFC
 * 8463 §4 for Ed25519), with a check of what DNS shows against the key.
 */
import { createPrivateKey, createPublicKey, generateKeyPair } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { GridpostError } from '../errors/catalogue.js';
import { parseTagList } from './tag-list.js';

/** A DKIM signing algorithm (RFC 6376 §3.3, RFC 8463 §3). */
export type DkimAlgorithm = 'rsa-sha256' | 'ed25519-sha256';

/** A domain key's material: the key pair, its algorithm, its size and its PEM for storage. */
export interface DomainKeyMaterial {
  readonly algorithm: DkimAlgorithm;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** Modulus length for RSA; 256 for Ed25519. */
  readonly bits: number;
  /** An RSA key under 2048 bits: verifiers accept it, but RFC 8301 §3.2 asks for 2048. */
  readonly weak: boolean;
  /** The private key as PKCS#8 PEM, to keep in the key file. */
  readonly pem: string;
}

/** RSA sizes generateKey makes, in bits. */
export const RSA_SIZES = [1024, 2048, 3072, 4096] as const;

// RFC 8301 §3.2: signers MUST use at least 1024 bits and SHOULD use at least 2048; verifiers
// need only handle up to 4096, so a larger key could fail at some receivers.
const RSA_MIN_BITS = 1024;
const RSA_STRONG_BITS = 2048;
const RSA_MAX_BITS = 4096;

// RFC 1035 §3.3.14: one TXT character-string holds at most 255 bytes.
const TXT_STRING_BYTES = 255;

const generate = promisify(generateKeyPair);

/**
 * Generates a domain key: RSA (2048 bits unless told; 1024 is allowed but weak) or Ed25519.
 * Asynchronous because a 4096-bit RSA key can take seconds of CPU.
 */
export async function generateKey(
  algorithm: DkimAlgorithm,
  bits: number = RSA_STRONG_BITS,
): Promise<DomainKeyMaterial> {
  if (algorithm === 'ed25519-sha256') {
    return fromPrivate((await generate('ed25519')).privateKey);
  }
  if (!(RSA_SIZES as readonly number[]).includes(bits)) {
    throw new GridpostError('E_VALIDATION', `RSA keys are made of ${RSA_SIZES.join(', ')} bits`, {
      path: 'bits',
    });
  }
  return fromPrivate((await generate('rsa', { modulusLength: bits })).privateKey);
}

/**
 * Imports a private key from PEM: PKCS#1 ("BEGIN RSA PRIVATE KEY") or PKCS#8 ("BEGIN PRIVATE
 * KEY"), RSA or Ed25519. Garbage, public keys and certificates are E_KEY_INVALID, keys with a
 * passphrase E_KEY_ENCRYPTED, other key types E_KEY_UNSUPPORTED, RSA under 1024 bits E_KEY_WEAK.
 */
export function readPrivateKey(pem: string | Buffer): DomainKeyMaterial {
  const text = Buffer.isBuffer(pem) ? pem.toString('utf8') : pem;
  refuseByLabel(text);
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: text, format: 'pem' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MISSING_PASSPHRASE') throw encrypted(err);
    throw new GridpostError('E_KEY_INVALID', 'the PEM text is not a readable private key', {
      cause: err,
    });
  }
  return fromPrivate(key);
}

/** Refuses, from the PEM labels alone, what cannot be a usable private key. */
function refuseByLabel(text: string): void {
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,ENCRYPTED/.test(text)) {
    throw encrypted();
  }
  if (/-----BEGIN OPENSSH PRIVATE KEY-----/.test(text)) {
    throw new GridpostError(
      'E_KEY_INVALID',
      'an OpenSSH private key; convert it to PKCS#8 with ssh-keygen -p -m PKCS8 -f FILE',
    );
  }
  if (!/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text)) {
    const what = /-----BEGIN ([A-Z0-9 ]+)-----/.exec(text)?.[1];
    const found = what ? `a PEM "${what}"` : 'no PEM block';
    throw new GridpostError('E_KEY_INVALID', `${found}, not a private key`);
  }
}

function encrypted(cause?: unknown): GridpostError {
  return new GridpostError('E_KEY_ENCRYPTED', 'the private key is protected by a passphrase', {
    cause,
  });
}

/** The material of a private key, checking its type and size. */
function fromPrivate(privateKey: KeyObject): DomainKeyMaterial {
  const algorithm = algorithmOf(privateKey);
  const bits = keyBits(privateKey);
  return {
    algorithm,
    privateKey,
    publicKey: createPublicKey(privateKey),
    bits,
    weak: algorithm === 'rsa-sha256' && bits < RSA_STRONG_BITS,
    pem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

/** The DKIM algorithm of a key, refusing other key types and RSA sizes outside RFC 8301's. */
function algorithmOf(key: KeyObject): DkimAlgorithm {
  const type = key.asymmetricKeyType;
  if (type === 'ed25519') return 'ed25519-sha256';
  if (type !== 'rsa') {
    throw new GridpostError(
      'E_KEY_UNSUPPORTED',
      `a ${type ?? 'unknown'} key; DKIM signs with RSA (rsa-sha256) or Ed25519 (ed25519-sha256)`,
    );
  }
  const bits = keyBits(key);
  if (bits < RSA_MIN_BITS) {
    throw new GridpostError('E_KEY_WEAK', `an RSA key of ${bits} bits; at least 1024 needed`);
  }
  if (bits > RSA_MAX_BITS) {
    throw new GridpostError(
      'E_KEY_UNSUPPORTED',
      `an RSA key of ${bits} bits; receivers need only verify up to 4096 (RFC 8301 §3.2)`,
    );
  }
  return 'rsa-sha256';
}

/** The size of a key in bits: the RSA modulus length, or 256 for Ed25519. */
export function keyBits(key: KeyObject): number {
  if (key.asymmetricKeyType === 'ed25519') return 256;
  return key.asymmetricKeyDetails?.modulusLength ?? 0;
}

/**
 * The TXT value to publish for a key (private or public half): "v=DKIM1; k=rsa; p=" with the
 * base64 SubjectPublicKeyInfo DER (RFC 6376 §3.6.1), or "k=ed25519" with the base64 of the
 * raw 32-byte public key (RFC 8463 §4).
 */
export function dkimRecord(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return `v=DKIM1; k=${keyTag(publicKey)}; p=${publicKeyBytes(publicKey).toString('base64')}`;
}

/** The k= tag of a key (RFC 6376 §3.6.1, RFC 8463 §4). */
function keyTag(key: KeyObject): 'rsa' | 'ed25519' {
  return key.asymmetricKeyType === 'ed25519' ? 'ed25519' : 'rsa';
}

/** The bytes p= carries: SPKI DER for RSA, the raw 32-byte public key for Ed25519. */
function publicKeyBytes(publicKey: KeyObject): Buffer {
  if (keyTag(publicKey) === 'rsa') return publicKey.export({ type: 'spki', format: 'der' });
  return Buffer.from(publicKey.export({ format: 'jwk' }).x ?? '', 'base64url');
}

/**
 * A TXT value cut into the strings of at most 255 bytes one TXT record carries (RFC 1035
 * §3.3.14), as it must be published; verifiers join them without separator (RFC 6376
 * §3.6.2.2). Records made by dkimRecord are ASCII, so characters are bytes.
 */
export function splitRecord(record: string): string[] {
  const out: string[] = [];
  for (let at = 0; at < record.length; at += TXT_STRING_BYTES) {
    out.push(record.slice(at, at + TXT_STRING_BYTES));
  }
  return out.length > 0 ? out : [''];
}

/** Why a published TXT value does not show our record's key, or that it does. */
export type RecordComparison =
  | { matches: true }
  | {
      matches: false;
      reason: 'malformed' | 'not-dkim' | 'no-key' | 'revoked' | 'other-type' | 'other-key';
      detail: string;
    };

/** True when a published TXT value (its strings joined) shows the key of our record. */
export function publishedMatches(published: string, record: string): boolean {
  return compareRecord(published, record).matches;
}

/**
 * Compares a published TXT value (its strings joined) with our record (from dkimRecord): it
 * matches when it is a DKIM1 key record with our k= whose p= is our key. Tag order, spaces and
 * folding inside values do not matter (RFC 6376 §3.2); k= defaults to rsa (§3.6.1).
 */
export function compareRecord(published: string, record: string): RecordComparison {
  const ours = parseTagList(record);
  if (!ours.ok) throw new Error(`compareRecord: our record is bad: ${ours.error}`);
  const tags = parseTagList(published);
  if (!tags.ok) return mismatch('malformed', tags.error);
  const v = tags.get('v');
  if (v !== undefined && v !== 'DKIM1') return mismatch('not-dkim', `v=${v}, not DKIM1`);
  // p= may be folded with whitespace inside (RFC 6376 §3.6.1).
  const p = tags.get('p')?.replace(/\s+/g, '');
  if (p === undefined) return mismatch('no-key', 'the record has no p= tag');
  if (p === '') return mismatch('revoked', 'p= is empty: the key is revoked');
  const k = tags.get('k') ?? 'rsa';
  const want = ours.get('k') ?? 'rsa';
  if (k !== want) return mismatch('other-type', `k=${k}, our key is ${want}`);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(p)) return mismatch('malformed', 'p= is not base64');
  const same = sameKeyBytes(Buffer.from(p, 'base64'), Buffer.from(ours.get('p') ?? '', 'base64'));
  return same ? { matches: true } : mismatch('other-key', 'p= holds another key');
}

function mismatch(
  reason: Exclude<RecordComparison, { matches: true }>['reason'],
  detail: string,
): RecordComparison {
  return { matches: false, reason, detail };
}

/**
 * True when published p= bytes are our key. An RSA key published as a bare PKCS#1
 * RSAPublicKey instead of SPKI counts as the same key: several verifiers accept that form.
 */
function sameKeyBytes(published: Buffer, ours: Buffer): boolean {
  if (published.equals(ours)) return true;
  try {
    const theirs = createPublicKey({ key: published, format: 'der', type: 'pkcs1' });
    return theirs.export({ type: 'spki', format: 'der' }).equals(ours);
  } catch {
    return false;
  }
}
