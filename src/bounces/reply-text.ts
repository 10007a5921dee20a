/**
 * Replies as text, the way operators paste them and DSNs quote them ("smtp; 550-5.1.1 ...",
 * several lines, or "550 5.1.1 ..." on one): parsed into an SmtpReply for the classifier.
 */
import { replyFromLines, type SmtpReply } from '../delivery/reply.js';

const LINE = /^([2-5]\d\d)(?:[ -]|$)(.*)$/;
// An enhanced code later in the text: "... (#5.1.1)", "[#4.16.1]", "5.7.1: ...".
const EMBEDDED = /(?:^|[\s(#[])([245]\.\d{1,3}\.\d{1,3})(?=[\s)\].,;:]|$)/;

/** Parses reply text; null when it does not start with a reply code. */
export function parseReplyText(input: string): SmtpReply | null {
  const lines = input
    .replace(/^\s*smtp\s*;\s*/i, '')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);
  const first = lines[0] ? LINE.exec(lines[0]) : null;
  if (!first) return null;
  const code = Number(first[1]);
  const texts = lines.map((l) => {
    const m = LINE.exec(l);
    return m && Number(m[1]) === code ? m[2]! : l;
  });
  return replyFromLines(code, texts);
}

/** The enhanced code of a reply: its own, or one written later in its text. */
export function enhancedOf(reply: SmtpReply): string | null {
  return reply.enhanced ?? EMBEDDED.exec(reply.text)?.[1] ?? null;
}
