/**
 * DKIM signing of whole messages (RFC 6376 §5, RFC 8463 for Ed25519) with one or more
 * signers: each adds its own DKIM-Signature field on top, and none covers another's.
 *
 * Our own signer rather than mailauth's: that one managed about 455 RSA-2048 signatures a
 * second on a 20 KB message on one thread, under our throughput target. Here the body is
 * canonicalised by a byte-level pass straight into the hash (dkim-canon.ts), hashed once per
 * body canonicalisation however many signers, and the whole signing runs off the event loop
 * (signMessage).
 */
import { createHash, sign as cryptoSign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { GridpostError } from '../errors/catalogue.js';
import { signOffLoop } from './sign-offload.js';
import {
  canonicalBody,
  canonicalField,
  relaxedField,
  splitMessage,
  wireForm,
} from './dkim-canon.js';
import type { CanonMode, Canonicalization, HeaderField } from './dkim-canon.js';
import {
  DEFAULT_OVERSIGNED_HEADERS,
  DEFAULT_SIGNED_HEADERS,
  dkimQuotedPrintable,
  foldedTemplate,
  headerList,
  selectFields,
  withSignature,
} from './dkim-field.js';
import type { Tag } from './dkim-field.js';
import type { DkimAlgorithm } from './dkim-key.js';

export type { Canonicalization } from './dkim-canon.js';
export type { DkimAlgorithm } from './dkim-key.js';

/** Who signs and how: one DKIM-Signature field per signer. */
export interface DkimSigner {
  /** d=: the signing domain, ASCII (an IDN in its A-label form). */
  domain: string;
  /** s=: the selector; the public key is at SELECTOR._domainkey.DOMAIN. */
  selector: string;
  algorithm: DkimAlgorithm;
  /** An RSA key for rsa-sha256, an Ed25519 key for ed25519-sha256. */
  privateKey: KeyObject;
  /** c=; relaxed/relaxed unless told. */
  canonicalization?: Canonicalization;
  /** i=: the agent or user signed for, "@domain" or "user@domain" in d= or a subdomain. */
  identity?: string;
  /** x= set this many seconds after t=; no x= (no expiry) unless told. */
  expireAfterSeconds?: number;
  /** Header fields to sign (h=) instead of DEFAULT_SIGNED_HEADERS; From is always added. */
  headers?: string[];
  /** Fields listed once more than present, instead of DEFAULT_OVERSIGNED_HEADERS; From always. */
  oversign?: string[];
}

/** One signer's work: its finished template and the bytes its key must sign. */
interface SigningJob {
  signer: DkimSigner;
  template: string;
  /** The canonical header data (both algorithms hash it with SHA-256 before the key op). */
  input: Buffer;
}

/** What a signer's options come to, worked out once per signer object (see compiled). */
interface CompiledSigner {
  signer: DkimSigner;
  headerMode: CanonMode;
  bodyMode: CanonMode;
  /** h= candidates in lower case, From first and exactly once. */
  names: string[];
  /** The over-signed names: From always. */
  oversigned: Set<string>;
}

const compiledSigners = new WeakMap<DkimSigner, CompiledSigner>();
const DEFAULT_CANONICALIZATION: Canonicalization = 'relaxed/relaxed';
const CANONICALIZATIONS: readonly string[] = [
  'relaxed/relaxed',
  'simple/simple',
  'relaxed/simple',
  'simple/relaxed',
];
// RFC 6376 §3.5 d= and s= are domain names: LDH labels joined by dots (no underscore).
const DNS_NAME = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$/;
// RFC 5322 §3.6.8 ftext: printable ASCII but the colon.
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;

/**
 * Signs a message (CRLF line ends, as intake stores it) and returns it with the
 * DKIM-Signature fields on top, in the order of the signers. What follows them is the message
 * in wire form (dkim-canon.ts wireForm): the input itself unless it had bare CR or LF, no
 * final CRLF or no empty line after the header; store and send the result as it is. The
 * signing runs on low-priority worker threads, so the event loop stays free (sign-offload.ts
 * says why that way); the signers are checked here first. `now` sets t= (and x=).
 */
export async function signMessage(
  message: Buffer,
  signers: readonly DkimSigner[],
  now: Date = new Date(),
): Promise<Buffer> {
  signers.forEach(compile);
  const wire = wireForm(message);
  const { fields } = await signOffLoop(wire, signers, undefined, now);
  return Buffer.concat([Buffer.from(fields, 'latin1'), wire]);
}

/** signMessage on the calling thread (for tools and tests). */
export function signMessageSync(
  message: Buffer,
  signers: readonly DkimSigner[],
  now: Date = new Date(),
): Buffer {
  const wire = wireForm(message);
  return Buffer.concat([Buffer.from(signatureFields(wire, signers, now), 'latin1'), wire]);
}

/**
 * The DKIM-Signature fields for a message in wire form, each ending in CRLF, first signer on
 * top: what signMessage puts above the message. Key operations on the calling thread.
 */
export function signatureFields(
  wire: Buffer,
  signers: readonly DkimSigner[],
  now: Date = new Date(),
): string {
  const jobs = prepare(wire, signers, now);
  const fields = jobs.map(({ signer, input, template }) => {
    const signature =
      signer.algorithm === 'rsa-sha256'
        ? cryptoSign('sha256', input, signer.privateKey)
        : // RFC 8463 §3: Ed25519 signs the SHA-256 of the header data, not the data.
          cryptoSign(null, createHash('sha256').update(input).digest(), signer.privateKey);
    return withSignature(template, signature.toString('base64')) + '\r\n';
  });
  return fields.join('');
}

/** Everything before the key operations: body hashes, h= lists, templates, header data. */
function prepare(wire: Buffer, signers: readonly DkimSigner[], now: Date): SigningJob[] {
  if (signers.length === 0) {
    throw new GridpostError('E_VALIDATION', 'no DKIM signer given', { path: 'signers' });
  }
  const compiledSigners = signers.map(compile);
  const { fields, body } = splitMessage(wire);
  if (!fields.some((f) => f.name === 'from')) {
    throw new GridpostError('E_BAD_MESSAGE', 'the message has no From field to sign');
  }
  const bodyHashes = new Map<CanonMode, string>();
  const bodyHash = (mode: CanonMode): string => {
    let hash = bodyHashes.get(mode);
    if (hash === undefined) bodyHashes.set(mode, (hash = hashBody(body, mode)));
    return hash;
  };
  return compiledSigners.map((c) => jobFor(c, fields, bodyHash, now));
}

/** bh=: the base64 SHA-256 of the canonical body (RFC 6376 §3.7). */
function hashBody(body: Buffer, mode: CanonMode): string {
  const hash = createHash('sha256');
  canonicalBody(body, mode, hash);
  return hash.digest('base64');
}

/**
 * A signer validated and its options worked out. A frozen signer (as the maildomains give
 * them) is compiled once and remembered: this runs for every message at full throughput.
 */
function compile(signer: DkimSigner, index: number): CompiledSigner {
  let c = compiledSigners.get(signer);
  if (c) return c;
  validateSigner(signer, index);
  const [headerMode, bodyMode] = canonModes(signer);
  c = {
    signer,
    headerMode,
    bodyMode,
    names: signedNames(signer),
    oversigned: oversignedNames(signer),
  };
  if (Object.isFrozen(signer)) compiledSigners.set(signer, c);
  return c;
}

/** One signer's template and the header data it signs (RFC 6376 §3.7, §5.4). */
function jobFor(
  c: CompiledSigner,
  fields: readonly HeaderField[],
  bodyHash: (mode: CanonMode) => string,
  now: Date,
): SigningJob {
  const { signer, headerMode, bodyMode } = c;
  const list = headerList(fields, c.names, c.oversigned);
  const template = foldedTemplate(tagsOf(c, list, bodyHash(bodyMode), now));
  const data = selectFields(fields, list).map((f) => canonicalField(f, headerMode));
  // The signature field itself comes last, with b= empty and without its CRLF.
  data.push(headerMode === 'simple' ? template : relaxedField(template));
  return { signer, template, input: Buffer.from(data.join(''), 'latin1') };
}

function canonModes(signer: DkimSigner): [CanonMode, CanonMode] {
  const c = signer.canonicalization ?? DEFAULT_CANONICALIZATION;
  return c.split('/') as [CanonMode, CanonMode];
}

/** h= candidates in lower case, From first and exactly once. */
function signedNames(signer: DkimSigner): string[] {
  const names = (signer.headers ?? DEFAULT_SIGNED_HEADERS).map((n) => n.toLowerCase());
  return ['from', ...new Set(names.filter((n) => n !== 'from'))];
}

/** The over-signed names: From always (a second From must break the signature). */
function oversignedNames(signer: DkimSigner): Set<string> {
  const names = (signer.oversign ?? DEFAULT_OVERSIGNED_HEADERS).map((n) => n.toLowerCase());
  return new Set(['from', ...names]);
}

/** The tags in the order they are written; b= follows them (foldedTemplate). */
function tagsOf(c: CompiledSigner, list: string[], bh: string, now: Date): Tag[] {
  const t = Math.floor(now.getTime() / 1000); // seconds since the epoch (RFC 6376 §3.5)
  const { signer, headerMode, bodyMode } = c;
  const tags: Tag[] = [
    { name: 'v', value: '1', split: 'never' },
    { name: 'a', value: signer.algorithm, split: 'never' },
    { name: 'c', value: `${headerMode}/${bodyMode}`, split: 'never' },
    { name: 'd', value: signer.domain, split: 'never' },
    { name: 's', value: signer.selector, split: 'never' },
  ];
  if (signer.identity !== undefined) {
    tags.push({ name: 'i', value: dkimQuotedPrintable(signer.identity), split: 'never' });
  }
  tags.push({ name: 't', value: String(t), split: 'never' });
  if (signer.expireAfterSeconds !== undefined) {
    tags.push({ name: 'x', value: String(t + signer.expireAfterSeconds), split: 'never' });
  }
  tags.push({ name: 'h', value: list.join(':'), split: 'list' });
  tags.push({ name: 'bh', value: bh, split: 'anywhere' });
  return tags;
}

/** Refuses a signer that would produce a signature no verifier accepts. */
function validateSigner(signer: DkimSigner, index: number): void {
  const bad = (field: string, why: string): never => {
    throw new GridpostError('E_VALIDATION', `DKIM signer ${index}: ${why}`, {
      path: `signers[${index}].${field}`,
    });
  };
  if (!DNS_NAME.test(signer.domain)) bad('domain', `"${signer.domain}" is not a domain name`);
  if (!DNS_NAME.test(signer.selector)) bad('selector', `"${signer.selector}" is not a selector`);
  const c = signer.canonicalization;
  if (c !== undefined && !CANONICALIZATIONS.includes(c)) bad('canonicalization', `"${c}"`);
  const keyWrong = keyProblem(signer.algorithm, signer.privateKey);
  if (keyWrong) bad('privateKey', keyWrong);
  const idWrong = signer.identity === undefined ? '' : identityProblem(signer.identity, signer);
  if (idWrong) bad('identity', idWrong);
  const x = signer.expireAfterSeconds;
  if (x !== undefined && !(Number.isInteger(x) && x > 0)) {
    bad('expireAfterSeconds', 'must be a whole number of seconds above 0 (x= after t=)');
  }
  const names = [...(signer.headers ?? []), ...(signer.oversign ?? [])];
  const badName = names.find((n) => !FIELD_NAME.test(n));
  if (badName !== undefined) bad('headers', `"${badName}" is not a header field name`);
}

/** Why a key cannot sign with the algorithm, or ''. */
function keyProblem(algorithm: DkimAlgorithm, key: KeyObject): string {
  const want = { 'rsa-sha256': 'rsa', 'ed25519-sha256': 'ed25519' }[algorithm];
  if (want === undefined) return `unknown algorithm "${String(algorithm)}"`;
  if (key?.type !== 'private') return 'not a private KeyObject';
  if (key.asymmetricKeyType !== want)
    return `a ${key.asymmetricKeyType} key cannot sign ${algorithm}`;
  return '';
}

/** Why i= is unusable, or '': its domain must be d= or under it (RFC 6376 §3.5). */
function identityProblem(identity: string, signer: DkimSigner): string {
  const at = identity.lastIndexOf('@');
  if (at === -1) return `"${identity}" has no @domain`;
  const domain = identity.slice(at + 1).toLowerCase();
  const d = signer.domain.toLowerCase();
  if (domain === d || domain.endsWith('.' + d)) return '';
  return `the domain of "${identity}" is neither ${signer.domain} nor under it`;
}
