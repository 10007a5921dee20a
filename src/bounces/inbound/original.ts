/**
 * The returned original message: the header section of a message/rfc822 or
 * text/rfc822-headers part (RFC 3462 §2), or, in a report without MIME structure, the header
 * lines quoted after a marker such as "------ This is a copy of the message, including all
 * the headers. ------". It is what matches a report back to the message we sent.
 */
import type { InboundMessage } from './message.js';
import { anyOf } from './pattern.js';
import type { InboundAnalysis } from './types.js';

export type Original = NonNullable<InboundAnalysis['original']>;

const MESSAGE_PARTS = new Set([
  'message/rfc822',
  'message/global',
  'text/rfc822-headers',
  'message/rfc822-headers',
  'message/global-headers',
]);

/** Lines after which a report without MIME structure quotes the original message. */
export const ORIGINAL_MARKERS = new RegExp(
  '^[ \\t>|]*-* ?(?:' +
    [
      'This is a copy of the message',
      'Below this line is a copy of the message',
      'Original message headers:',
      'Original message',
      'The header of the original message is following',
      'Undelivered message headers',
      'Returned message',
      'Start of returned message',
      'Enclosed is a copy of',
      'Unsent message below',
      'Message header follows',
      '\\*\\*\\* ?Message headers? (?:follows?|below)',
      'Forwarded message',
    ].join('|') +
    ')',
  'im',
);

// Field names of an original message header section; a heuristic for quoted text.
const HEADER_LINE = /^([!-9;-~]{1,76}):[ \t]?(.*)$/;
const KNOWN = anyOf(
  [
    'received',
    'return-path',
    'message-id',
    'from',
    'to',
    'cc',
    'subject',
    'date',
    'mime-version',
    'content-type',
    'reply-to',
    'sender',
    'delivered-to',
    'dkim-signature',
    'precedence',
    'errors-to',
    'references',
    'in-reply-to',
    'list-[a-z-]+',
    'x-[a-z0-9-]+',
  ],
  { before: '^', after: '$' },
);

/** The original message's headers from a message part, else from the report's text. */
export function findOriginal(msg: InboundMessage): Original | undefined {
  const part = msg.parts.find((p) => MESSAGE_PARTS.has(p.type));
  if (part) {
    const head = headerSection(part.content);
    if (head) return describe(head);
  }
  return quotedOriginal(msg.text);
}

/** Header lines quoted after one of the markers, when there are any. */
export function quotedOriginal(text: string): Original | undefined {
  const m = ORIGINAL_MARKERS.exec(text);
  if (!m) return undefined;
  const after = text.slice(m.index + m[0].length);
  const lines = after.slice(after.indexOf('\n') + 1, 256 * 1024).split('\n');
  let i = 0;
  while (i < lines.length && i < 10 && !isKnownHeader(lines[i]!)) i++;
  const head: string[] = [];
  for (; i < lines.length; i++) {
    const line = lines[i]!.replace(/^> ?/, '');
    if (line.trim() === '') break;
    if (!HEADER_LINE.test(line) && !/^[ \t]/.test(line)) break;
    head.push(line);
  }
  return head.length > 0 ? describe(head.join('\n')) : undefined;
}

function isKnownHeader(line: string): boolean {
  const m = HEADER_LINE.exec(line.replace(/^> ?/, ''));
  return m !== null && KNOWN.test(m[1]!);
}

/** The header section of a message: everything before the first blank line. */
function headerSection(content: string): string {
  const text = content.replace(/^\s*\n/, '');
  const end = text.search(/\n[ \t]*\n/);
  return (end < 0 ? text : text.slice(0, end)).slice(0, 256 * 1024).trimEnd();
}

function describe(headers: string): Original {
  const original: Original = { headers };
  const messageId = headerValue(headers, 'message-id');
  const returnPath = headerValue(headers, 'return-path');
  if (messageId) original.messageId = messageId.replace(/\s+/g, '');
  if (returnPath) original.returnPath = returnPath.replace(/^<|>$/g, '').trim() || '<>';
  return original;
}

/** The unfolded value of a field in header text. */
export function headerValue(headers: string, name: string): string | undefined {
  const re = new RegExp(`^${name}[ \\t]*:[ \\t]*(.*(?:\\n[ \\t].*)*)`, 'im');
  const m = re.exec(headers);
  return m ? m[1]!.replace(/\n[ \t]+/g, ' ').trim() : undefined;
}
