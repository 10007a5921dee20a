/**
 * Messages given as structured fields over HTTP (from, to, subject, text, html, headers) are
 * turned into RFC 5322 bytes by nodemailer's MailComposer: MIME structure, encodings and
 * header folding are a solved problem there.
 */
import MailComposer from 'nodemailer/lib/mail-composer';
import { randomToken } from './message.js';

/** The structured form of a message. */
export interface StructuredMessage {
  from: string;
  to: string[];
  cc?: string[];
  subject?: string;
  text?: string;
  html?: string;
  headers?: Record<string, string>;
}

/** Builds the RFC 5322 bytes of a structured message (CRLF line ends). */
export function composeMessage(m: StructuredMessage, hostname: string): Promise<Buffer> {
  const composer = new MailComposer({
    from: m.from,
    to: m.to,
    cc: m.cc,
    subject: m.subject ?? '',
    text: m.text,
    html: m.html,
    headers: m.headers,
    messageId: `<${randomToken()}@${hostname}>`,
    date: new Date(),
    newline: 'win',
    xMailer: false,
  });
  return composer.compile().build();
}
