/**
 * Reading what an operator hands over for a certified account: PEM text (the certificate,
 * any chain certificates and the private key, in separate texts or all in one, the key
 * possibly encrypted) or a PKCS#12 file with its password. The result is node:crypto
 * objects; nothing here judges whether they fit together (smime-credential.ts does).
 *
 * node:crypto reads PEM and every key type but has no PKCS#12 reader, so PKCS#12 goes
 * through node-forge, which handles the PBES2/AES-256 files openssl 3 writes by default as
 * well as the legacy 3DES/RC2 ones.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { GridpostError } from '../errors/catalogue.js';

/** What the operator gives: PEM text, or PKCS#12 bytes; the password opens either. */
export interface CredentialInput {
  pem?: string;
  pkcs12?: Buffer;
  password?: string;
}

/** The certificates (in the order given) and the one private key of an input. */
export interface CredentialParts {
  certificates: X509Certificate[];
  privateKey: KeyObject;
}

// Certificates with their chain and key are a few kilobytes; anything larger is not one.
const MAX_INPUT_BYTES = 1_000_000;
const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n[\s\S]*?-----END \1-----/g;

/** The certificates and private key of PEM or PKCS#12 input; throws E_CERT_INVALID. */
export function decodeCredential(input: CredentialInput): CredentialParts {
  const given = [input.pem, input.pkcs12].filter((v) => v !== undefined).length;
  if (given !== 1) invalid('give either PEM text or a PKCS#12 file (with its password)');
  const size = input.pem?.length ?? input.pkcs12?.length ?? 0;
  if (size > MAX_INPUT_BYTES) invalid(`the input is ${size} bytes, too large for a certificate`);
  const parts = input.pem !== undefined ? fromPem(input.pem, input.password) : fromPkcs12(input);
  if (parts.certificates.length === 0) invalid('there is no certificate in it');
  return parts;
}

function fromPem(text: string, password: string | undefined): CredentialParts {
  const blocks = [...text.matchAll(PEM_BLOCK)].map((m) => ({ label: m[1]!, pem: m[0] }));
  if (blocks.length === 0) invalid('no PEM block (-----BEGIN ...-----) found');
  const certificates = blocks
    .filter((b) => b.label === 'CERTIFICATE')
    .map((b, i) => certificate(b.pem, `certificate ${i + 1}`));
  const keys = blocks.filter((b) => b.label.endsWith('PRIVATE KEY'));
  if (keys.length !== 1) invalid(`${keys.length} private keys in the PEM text; give exactly one`);
  return { certificates, privateKey: pemKey(keys[0]!.pem, password) };
}

function certificate(data: string | Buffer, what: string): X509Certificate {
  try {
    return new X509Certificate(data);
  } catch (err) {
    return invalid(`${what} is damaged (${(err as Error).message})`, err);
  }
}

function pemKey(pem: string, password: string | undefined): KeyObject {
  try {
    return createPrivateKey({
      key: pem,
      ...(password !== undefined ? { passphrase: password } : {}),
    });
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ERR_MISSING_PASSPHRASE')
      invalid('the private key is encrypted: give its password');
    if (/bad decrypt/i.test((err as Error).message)) invalid('wrong password for the private key');
    return invalid(`the private key is damaged (${(err as Error).message})`, err);
  }
}

/** PKCS#12 through forge: its MAC proves the password, then each bag is handed to node. */
function fromPkcs12(input: CredentialInput): CredentialParts {
  let p12: forge.pkcs12.Pkcs12Pfx;
  try {
    const der = forge.asn1.fromDer(input.pkcs12!.toString('binary'));
    p12 = forge.pkcs12.pkcs12FromAsn1(der, true, input.password ?? '');
  } catch (err) {
    const message = (err as Error).message;
    if (/MAC could not be verified|wrong password/i.test(message)) {
      invalid('wrong password for the PKCS#12 file', err);
    }
    return invalid(`not a readable PKCS#12 file (${message})`, err);
  }
  const bags = p12.safeContents.flatMap((c) => c.safeBags);
  const keyBags = [forge.pki.oids.keyBag, forge.pki.oids.pkcs8ShroudedKeyBag];
  const keys = bags.filter((b) => keyBags.includes(b.type));
  if (keys.length !== 1) invalid(`${keys.length} private keys in the PKCS#12 file; need one`);
  const certificates = bags
    .filter((b) => b.type === forge.pki.oids.certBag)
    .map((b, i) => certificate(bagDer(b), `certificate ${i + 1} of the PKCS#12 file`));
  return { certificates, privateKey: bagKey(keys[0]!) };
}

// forge parses only RSA keys and certificates; for others it leaves the ASN.1 in `asn1`.
type Bag = forge.pkcs12.Bag & { asn1?: forge.asn1.Asn1 };

function bagDer(bag: Bag): Buffer {
  const asn1 = bag.cert ? forge.pki.certificateToAsn1(bag.cert) : bag.asn1;
  if (!asn1) invalid('a PKCS#12 certificate bag is empty');
  return Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary');
}

function bagKey(bag: Bag): KeyObject {
  const info = bag.key
    ? forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(bag.key))
    : bag.asn1;
  if (!info) invalid('the PKCS#12 key bag is empty');
  try {
    const der = Buffer.from(forge.asn1.toDer(info).getBytes(), 'binary');
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } catch (err) {
    return invalid(`the private key in the PKCS#12 file is damaged`, err);
  }
}

function invalid(why: string, cause?: unknown): never {
  throw new GridpostError('E_CERT_INVALID', `Cannot read the certificate: ${why}`, { cause });
}
