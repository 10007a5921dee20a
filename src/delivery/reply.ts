/**
 * SMTP replies as values: the code, the RFC 3463 enhanced status code when the server gave one,
 * and the full text (every line of a multi-line reply, joined with "\n", without the codes).
 */
export interface SmtpReply {
  /** Three-digit reply code (RFC 5321 §4.2). */
  code: number;
  /** Enhanced status code such as "5.1.1" (RFC 3463), or null when the reply lacks one. */
  enhanced: string | null;
  /** Reply text of every line, codes stripped, joined with "\n". */
  text: string;
}

const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)/;

/** Builds a reply from its raw lines ("250-first", "250 last"); enhanced code from the first. */
export function replyFromLines(code: number, texts: string[]): SmtpReply {
  let enhanced: string | null = null;
  const stripped = texts.map((t, i) => {
    const m = ENHANCED.exec(t);
    if (!m || String(code)[0] !== m[1]) return t;
    if (i === 0) enhanced = `${m[1]}.${m[2]}.${m[3]}`;
    return t.slice(m[0].length);
  });
  return { code, enhanced, text: stripped.join('\n') };
}

/** The replies we made ourselves; response rules never match them (see isRemote). */
const LOCAL = new WeakSet<SmtpReply>();

/** Makes a reply for an outcome we decide locally (DNS failure, timeout, policy). */
export function localReply(code: number, enhanced: string, text: string): SmtpReply {
  const reply = { code, enhanced, text };
  LOCAL.add(reply);
  return reply;
}

/**
 * Whether a reply came from a remote server (not made by localReply). Only remote replies
 * feed the response rules, so an action's own deferrals can never trigger or extend it.
 */
export function isRemote(r: SmtpReply): boolean {
  return !LOCAL.has(r);
}

/** The reply as one line for logs and records: "550 5.1.1 user unknown". */
export function formatReply(r: SmtpReply): string {
  const text = r.text.replace(/\n/g, ' / ');
  return r.enhanced ? `${r.code} ${r.enhanced} ${text}` : `${r.code} ${text}`;
}

/** Transient (4xx) or permanent (5xx) or success (2xx/3xx). */
export function replyClass(r: SmtpReply): 'success' | 'transient' | 'permanent' {
  if (r.code >= 500) return 'permanent';
  if (r.code >= 400) return 'transient';
  return 'success';
}
