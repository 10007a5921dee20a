/**
 * S/MIME signing of a whole message (RFC 8551 §3.5.3, RFC 1847 §2.1): the content entity
 * (the message's Content-* fields and body, made 7-bit safe) becomes the first part of a
 * multipart/signed; the second is application/pkcs7-signature with a detached CMS
 * SignedData over exactly those bytes. The other header fields (From, To, Subject, Date,
 * Message-ID, Received, List-Unsubscribe, ...) stay in the outer header. Nothing may change
 * the result afterwards but header fields added on top (DKIM signs after this).
 */
import { randomBytes } from 'node:crypto';
import { GridpostError } from '../errors/catalogue.js';
import { canonicalCrlf, joinMultipart, sevenBitEntity } from './mime-7bit.js';
import { encodeBase64Lines } from './mime-encode.js';
import { joinEntity, splitEntity, valueOf, type HeaderField } from './mime-header.js';
import { detachedSignedData } from './smime-cms.js';
import { signingRefusal, type SmimeCredential } from './smime-credential.js';

// Shown by readers that do not know MIME (RFC 2046 §5.1.1 preamble).
const PREAMBLE = Buffer.from('This is an S/MIME signed message.');
const SIGNATURE_PART_HEADER = [
  'Content-Type: application/pkcs7-signature; name="smime.p7s"',
  'Content-Transfer-Encoding: base64',
  'Content-Disposition: attachment; filename="smime.p7s"',
  'Content-Description: S/MIME Cryptographic Signature',
].join('\r\n');

/**
 * The message signed with `cred`, at `now` (the signingTime attribute). Throws GridpostError:
 * E_CERT_* when the credential may not sign for the From address now, E_BAD_MESSAGE when
 * there is no From or the content cannot be made 7-bit.
 */
export function smimeSign(message: Buffer, cred: SmimeCredential, now: Date = new Date()): Buffer {
  const { fields, body } = splitEntity(canonicalCrlf(message));
  const from = firstMailbox(valueOf(fields, 'from') ?? '');
  if (!from)
    throw new GridpostError('E_BAD_MESSAGE', 'The message has no From address to sign for');
  const refusal = signingRefusal(cred, from, now);
  if (refusal) throw new GridpostError(refusal.code, refusal.text);

  const content = sevenBitEntity({ fields: fields.filter(isContentField), body });
  const signed = joinEntity(content.fields, content.body);
  const signature = detachedSignedData(signed, cred, now);

  const boundary = newBoundary(signed);
  const outer = [...fields.filter((f) => !isContentField(f) && !isMimeVersion(f))];
  outer.push(field('MIME-Version', '1.0'), field('Content-Type', signedType(boundary)));
  const parts = [signed, signaturePart(signature)];
  return joinEntity(outer, joinMultipart(boundary, parts, PREAMBLE));
}

function isContentField(f: HeaderField): boolean {
  return f.name.toLowerCase().startsWith('content-');
}

function isMimeVersion(f: HeaderField): boolean {
  return f.name.toLowerCase() === 'mime-version';
}

function field(name: string, value: string): HeaderField {
  return { name, raw: `${name}: ${value}\r\n` };
}

// RFC 8551 §3.5.3.2: micalg names the digest of the signature, here SHA-256.
function signedType(boundary: string): string {
  return (
    'multipart/signed; protocol="application/pkcs7-signature";\r\n' +
    ` micalg=sha-256; boundary="${boundary}"`
  );
}

/**
 * "=_" cannot occur in quoted-printable or base64 text, so the boundary is all but sure not
 * to be in the content; the check makes it sure (RFC 2046 §5.1.1).
 */
function newBoundary(content: Buffer): string {
  for (;;) {
    const boundary = `=_gridpost_smime_${randomBytes(12).toString('hex')}`;
    if (!content.includes(`--${boundary}`)) return boundary;
  }
}

function signaturePart(der: Buffer): Buffer {
  const base64 = encodeBase64Lines(der);
  const body = base64.subarray(0, base64.length - 2); // the delimiter brings its own CRLF
  return Buffer.concat([Buffer.from(SIGNATURE_PART_HEADER + '\r\n\r\n'), body]);
}

/**
 * The addr-spec of the first mailbox of an address list: the part in angle brackets, else
 * the bare address; comments and display names ignored (RFC 5322 §3.4).
 * Limitation: obsolete route syntax and groups are not understood; such a From finds no
 * match in the certificate and the message is refused, not signed wrongly.
 */
export function firstMailbox(value: string): string | null {
  const text = value.replace(/\((?:[^()\\]|\\.)*\)/g, ' ');
  const first = mailboxList(text)[0]?.trim() ?? '';
  const angle = /<([^<>]*)>\s*$/.exec(first);
  const address = (angle ? angle[1]! : first).trim();
  return address.includes('@') ? address : null;
}

function mailboxList(text: string): string[] {
  const list: string[] = [];
  let current = '';
  let quoted = false;
  let angled = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\' && quoted) current += c + (text[++i] ?? '');
    else {
      if (c === '"') quoted = !quoted;
      else if (!quoted && (c === '<' || c === '>')) angled = c === '<';
      if (c === ',' && !quoted && !angled) {
        list.push(current);
        current = '';
      } else current += c;
    }
  }
  return [...list, current];
}
