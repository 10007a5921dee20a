/**
 * Preparing an incoming message for the spool: refuse what cannot be stored safely, normalise
 * line ends to CRLF (so no bare-LF or bare-CR sequence can ever reach a receiver and be read
 * as the end of DATA: the SMTP smuggling defence), and add the trace and identity header
 * fields a receiver expects (Received, and Message-ID and Date when the client left them out,
 * as Postfix's cleanup does).
 */
import { randomBytes } from 'node:crypto';

/** A refusal at intake: a stable reason and the SMTP reply to give. */
export interface IntakeRefusal {
  reason: 'nul-bytes' | 'no-header' | 'too-large';
  code: number;
  enhanced: string;
  text: string;
}

/** Who handed the message over, for the Received field. */
export interface TraceInfo {
  hostname: string;
  messageId: string;
  helo?: string;
  clientIp?: string;
  protocol: string;
  recipient?: string;
  now: Date;
}

const CRLF = Buffer.from('\r\n');
const HEADER_LINE = /^[\x21-\x39\x3b-\x7e]+[ \t]*:/;

/** Checks and normalises raw message bytes; returns the body to store or a refusal. */
export function prepareMessage(raw: Buffer, trace: TraceInfo): Buffer | IntakeRefusal {
  if (raw.includes(0)) {
    return refusal('nul-bytes', 554, '5.6.0', 'Message contains NUL bytes, which SMTP forbids');
  }
  const body = normaliseLineEnds(raw);
  const headerEnd = headerLength(body);
  const firstLine = body.subarray(0, Math.min(body.length, 1000)).toString('latin1');
  if (!HEADER_LINE.test(firstLine)) {
    return refusal('no-header', 554, '5.6.0', 'Message has no header fields (RFC 5322 §2.1)');
  }
  const header = body.subarray(0, headerEnd).toString('latin1');
  const added = [receivedField(trace)];
  if (!/^message-id[ \t]*:/im.test(header)) {
    added.push(`Message-ID: <${trace.messageId}@${trace.hostname}>`);
  }
  if (!/^date[ \t]*:/im.test(header)) added.push(`Date: ${trace.now.toUTCString()}`);
  return Buffer.concat([Buffer.from(added.join('\r\n') + '\r\n'), withFinalCrlf(body)]);
}

/** True when the value is a refusal rather than a prepared body. */
export function isRefusal(v: Buffer | IntakeRefusal): v is IntakeRefusal {
  return !Buffer.isBuffer(v);
}

function refusal(reason: IntakeRefusal['reason'], code: number, enhanced: string, text: string) {
  return { reason, code, enhanced, text };
}

/**
 * Rewrites bare LF and bare CR as CRLF. Most messages are already clean, so first check with
 * indexOf and return the input untouched in that case.
 */
export function normaliseLineEnds(raw: Buffer): Buffer {
  if (isCleanCrlf(raw)) return raw;
  const text = raw.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n');
  return Buffer.from(text, 'latin1');
}

function isCleanCrlf(raw: Buffer): boolean {
  let lf = raw.indexOf(10);
  while (lf !== -1) {
    if (lf === 0 || raw[lf - 1] !== 13) return false;
    lf = raw.indexOf(10, lf + 1);
  }
  let cr = raw.indexOf(13);
  while (cr !== -1) {
    if (raw[cr + 1] !== 10) return false;
    cr = raw.indexOf(13, cr + 1);
  }
  return true;
}

/** Bytes of the header section, up to and including the blank line (or all of it). */
function headerLength(body: Buffer): number {
  const end = body.indexOf('\r\n\r\n');
  return end === -1 ? body.length : end + 4;
}

function withFinalCrlf(body: Buffer): Buffer {
  return body.length >= 2 && body[body.length - 2] === 13 && body[body.length - 1] === 10
    ? body
    : Buffer.concat([body, CRLF]);
}

function receivedField(t: TraceInfo): string {
  const ip = `[${t.clientIp ?? 'unknown'}]`;
  const from = t.helo ? `from ${t.helo} (${ip})` : `from ${ip}`;
  const forPart = t.recipient ? `\r\n\tfor <${t.recipient}>` : '';
  const by = `by ${t.hostname} (Gridpost) with ${t.protocol} id ${t.messageId}`;
  return `Received: ${from}\r\n\t${by}${forPart};\r\n\t${t.now.toUTCString()}`;
}

/** A Message-ID-safe random token (for API-composed messages). */
export function randomToken(): string {
  return randomBytes(9).toString('base64url');
}
