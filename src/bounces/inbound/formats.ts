/**
 * Bounces without a delivery-status part, written for people by mail servers that predate
 * RFC 3464 or ignore it. Each format is data: a signature that identifies it, where its list
 * of recipients starts and ends, and what a recipient line looks like; scan.ts does the rest.
 * The signatures are the fixed texts of each program (Exchange, Gmail, Yahoo, qmail, Exim,
 * Postfix, Sendmail, Domino, GroupWise, SMTP32), as seen in the sample reports of
 * test/data/bounces/.
 */
import { ORIGINAL_MARKERS } from './original.js';
import { anyOf, LINE_START } from './pattern.js';
import { ADDRESS, RECIPIENT_LINE, scanSection } from './scan.js';
import type { RecipientFacts } from './recipient.js';
import type { InboundFormat } from './types.js';

/** One non-standard format. */
export interface FormatRule {
  format: InboundFormat;
  /** A line of the report that identifies the format (also where its section starts). */
  signature: RegExp;
  /** Whether the signature alone is enough, without a bounce-like sender or subject. */
  strong: boolean;
  /** Where the recipients section starts, when not at the signature. */
  start?: RegExp;
  /** Where it ends, besides the original-message markers. */
  end?: RegExp;
  /** A recipient line, the address in group 1, a reason in group 2; default RECIPIENT_LINE. */
  recipient?: RegExp;
  /** Text that makes the report a delay warning. */
  delay?: RegExp;
  /** Whether the reason is only on the recipient line (default: it may follow). */
  oneLine?: boolean;
  /** Whether a line naming two different addresses is prose rather than a recipient. */
  single?: boolean;
  /** Also open a recipient at any line with an address and one of these words. */
  phrase?: RegExp;
  /** Recipient lines give a local part only, of the reporting host's domain (group 1). */
  bareNames?: boolean;
}

/** Words of a line that names a failed recipient somewhere in it. */
const FAILURE_WORDS = anyOf(
  [
    'user unknown',
    'unknown user',
    'no such (?:user|mailbox|address|recipient)',
    'mailbox (?:is )?(?:full|unavailable|not found)',
    'quota',
    'undeliverable',
    'not delivered',
    "could(?: not|n't) be delivered",
    'delivery (?:has )?failed',
    'failed',
    'invalid',
    "does(?: not|n't) exist",
    'not (?:a valid|found|listed|known)',
    'unknown',
    'recipient',
    'addressed to',
    'was addressed',
    'rejected',
    'refused',
    'unable to deliver',
    'rcpt to',
  ],
  { before: String.raw`\b`, after: String.raw`\b` },
);

/** How SMTP32 (and reporters like it) label the failed address. */
const SMTP32_LABELS = [
  String.raw`Delivery failed \d+ attempts?:`,
  'undeliverable to',
  'Unknown user:',
  'Invalid final delivery userid:',
].map((l) => l.replace(/ /g, String.raw`\s+`));

const SEPARATOR = /^\s*(?:-{5,}|={5,}|_{5,})\s*$/;

/** Text of delay warnings, whatever their format. */
export const DELAY = anyOf([
  'has not yet been delivered',
  'not been delivered yet',
  'will (?:continue to |keep )?(?:be )?(?:try|retr)(?:y|ying|ied)?',
  'still (?:be(?:ing)? )?(?:trying|retried|awaiting)',
  'is still in the queue',
  'delivery attempts will continue',
  'THIS IS A WARNING ONLY',
  'has been delayed',
  'delivery to the following recipients? (?:has been|was) delayed',
  'temporarily deferred',
  'no action is required on your part',
  'warning: message .* delayed',
]);

/** The formats, most specific first. */
export const FORMATS: FormatRule[] = [
  {
    format: 'exchange',
    signature: /^\s*Your message to \S+ couldn't be delivered\./im,
    strong: true,
    recipient: new RegExp(`^\\s*Your message to (${ADDRESS}) couldn't be delivered\\.?(.*)$`, 'i'),
    end: /^\s*Original message headers:/i,
  },
  {
    format: 'exchange',
    signature: anyOf(
      [
        'Delivery has failed to these recipients or (?:groups|distribution lists):',
        String.raw`Your message did not reach some or all of the intended recipients\.`,
        String.raw`The following recipient\(s\) cannot be reached:`,
        'Diagnostic information for administrators:',
      ],
      { before: LINE_START, flags: 'im' },
    ),
    strong: true,
    delay: /^\s*Delivery is delayed to these recipients or groups:/im,
    end: /^\s*Original message headers:/i,
  },
  {
    format: 'exchange',
    signature: /^\s*Delivery is delayed to these recipients or groups:/im,
    strong: true,
    delay: /./,
    end: /^\s*Original message headers:/i,
  },
  {
    format: 'gmail',
    signature: anyOf(
      [
        'Delivery to the following recipients? failed(?: permanently)?:',
        String.raw`(?:\*\* )?Address not found \*\*`,
        String.raw`(?:\*\* )?Message not delivered \*\*`,
        String.raw`(?:\*\* )?Message blocked \*\*`,
        'Delivery to the following recipients? has been delayed:',
        String.raw`(?:\*\* )?Delivery incomplete \*\*`,
      ],
      { before: LINE_START, flags: 'im' },
    ),
    strong: true,
    delay: /has been delayed|Delivery incomplete/i,
    end: /^\s*(?:-{5,} ?Original message|The response (?:from the remote server )?was:$)/i,
  },
  {
    format: 'yahoo',
    signature: anyOf(
      [
        'Sorry, we were unable to deliver your message to the following address',
        String.raw`Message from yahoo\.com\.`,
        'Unable to deliver message to the following address',
      ],
      { before: LINE_START, flags: 'im' },
    ),
    strong: true,
    end: /^\s*-{2,} ?(?:Below this line is a copy|Original message)/i,
  },
  {
    // Yahoo's older qmail-based text quotes the original's To: before the copy.
    format: 'yahoo',
    signature: /^\s*I'm afraid I wasn't able to deliver the following message\./im,
    strong: false,
    recipient: new RegExp(`^\\s*To:\\s*<?(${ADDRESS})>?(.*)$`, 'i'),
    oneLine: true,
    end: /^\s*-{2,} ?Below this line is a copy/i,
  },
  {
    format: 'qmail',
    signature: /^\s*Hi\. This is the (?:qmail-send|qmail) program/im,
    strong: true,
    end: /^\s*-{2,} ?(?:Below this line is a copy|Enclosed is a copy)/i,
  },
  {
    format: 'exim',
    signature: anyOf(
      [
        'This message was created automatically by mail delivery software',
        'A message that you sent could not be delivered to one or more of its',
        'A message that you sent has not yet been delivered',
      ],
      { before: LINE_START, flags: 'im' },
    ),
    strong: true,
    start: anyOf(
      [
        String.raw`The following address(?:\(es\))? failed:`,
        'A message that you sent (?:could not|has not yet)',
      ],
      { before: LINE_START, flags: 'im' },
    ),
    end: /^\s*-{5,} ?(?:This is a copy of the message|The header of the original message)/i,
    delay: /has not yet been delivered|No action is required on your part/i,
  },
  {
    format: 'postfix',
    signature: /^\s*This is the (?:mail system|Postfix program) at host /im,
    strong: true,
    end: /^\s*(?:--- ?Delivery report unavailable|Reporting-MTA:)/i,
    delay: /THIS IS A WARNING ONLY/,
  },
  {
    format: 'sendmail',
    signature: anyOf(
      ['permanent fatal errors', 'transient non-fatal errors', 'delivery problems'],
      { before: String.raw`^\s*-{3,} ?The following addresses? (?:had|have) `, flags: 'im' },
    ),
    strong: true,
    end: /^\s*-{3,} ?(?:Original message|Message header follows|Returned message)/i,
    delay: /transient non-fatal errors|Warning: message still undelivered/i,
  },
  {
    format: 'domino',
    signature: /^\s*was not delivered to:\s*$/im,
    strong: true,
    end: /^\s*(?:Your message was not delivered|Subject:)/i,
  },
  {
    format: 'groupwise',
    signature: /^\s*The message that you sent was undeliverable to the following:/im,
    strong: true,
    end: /^\s*(?:Possibly truncated original message follows|Reason for the undeliverability)/i,
  },
  {
    format: 'exchange',
    // Exchange 5.5 and its X.400 addresses: "c=US;a= ;p=Org;o=Site;dda:SMTP=user@example.com;".
    signature: /^\s*did not reach the following recipient\(s\):/im,
    strong: true,
    recipient: new RegExp(`^\\s*(?:c=[^\\n]{0,200}?SMTP=)?[<"]?(${ADDRESS})[>";]?(.*)$`, 'i'),
  },
  {
    format: 'smtp32',
    signature: anyOf(SMTP32_LABELS, { before: LINE_START, after: String.raw`\s`, flags: 'im' }),
    strong: false,
    recipient: anyOf(SMTP32_LABELS, {
      before: LINE_START,
      after: String.raw`\s*<?(${ADDRESS})>?(.*)$`,
    }),
    end: /^\s*Original message follows/i,
  },
  {
    // AOL names its members without their domain.
    format: 'heuristic',
    signature: new RegExp(
      LINE_START +
        'Your mail to the following recipients could not be delivered ' +
        'because they are not accepting mail from',
      'im',
    ),
    strong: false,
    recipient: /^\s+([A-Za-z0-9._-]{1,64})\s*$/,
    bareNames: true,
  },
  {
    // Any other report from a mailer: recipient lines anywhere before the quoted original.
    format: 'heuristic',
    signature: /^/,
    strong: false,
    single: true,
    phrase: FAILURE_WORDS,
  },
];

/** A recognised non-standard report. */
export interface FormatMatch {
  format: InboundFormat;
  recipients: RecipientFacts[];
  delay: boolean;
}

/** What is known of the report besides its text. */
export interface ReportContext {
  /** Whether its sender or subject say it is a delivery report. */
  bounceLike: boolean;
  /** The domain of its sender ("aol.com"), for formats that name recipients without one. */
  senderDomain?: string;
}

/** The first format whose signature is in the text and which names a recipient. */
export function matchFormat(text: string, context: ReportContext): FormatMatch | null {
  const head = text.slice(0, 256 * 1024);
  let lines: string[] | null = null;
  for (const rule of FORMATS) {
    if (!rule.strong && !context.bounceLike) continue;
    if (rule.bareNames && !context.senderDomain) continue;
    const sig = rule.signature.exec(head);
    if (!sig) continue;
    lines ??= head.split('\n');
    const recipients = scanFrom(head, lines, rule, sig.index, context.senderDomain);
    if (recipients.length === 0) continue;
    const delay = (rule.delay ?? DELAY).test(head.slice(0, endOffset(head)));
    return { format: rule.format, recipients, delay };
  }
  return null;
}

/** The format whose signature is in the text, whether or not it names a recipient. */
export function formatOf(text: string, context: ReportContext): InboundFormat {
  const head = text.slice(0, 256 * 1024);
  const rule = FORMATS.find(
    (r) => r.format !== 'heuristic' && (r.strong || context.bounceLike) && r.signature.test(head),
  );
  return rule?.format ?? 'heuristic';
}

function scanFrom(
  text: string,
  lines: string[],
  rule: FormatRule,
  at: number,
  senderDomain: string | undefined,
): RecipientFacts[] {
  const start = rule.start?.exec(text);
  const offset = start && start.index >= at ? start.index : at;
  const end = rule.end ? new RegExp(`${rule.end.source}|${ORIGINAL_MARKERS.source}`, 'i') : END;
  return scanSection(lines, {
    start: lineOf(text, offset),
    end,
    recipient: rule.recipient ?? RECIPIENT_LINE,
    multiline: !rule.oneLine,
    single: rule.single,
    phrase: rule.phrase,
    bareDomain: rule.bareNames ? senderDomain : undefined,
  });
}

const END = new RegExp(`${ORIGINAL_MARKERS.source}|${SEPARATOR.source}`, 'i');

/** Where the quoted original starts (its text must not decide delay or failure). */
function endOffset(text: string): number {
  const m = ORIGINAL_MARKERS.exec(text);
  return m ? m.index : text.length;
}

function lineOf(text: string, offset: number): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) n++;
  return n;
}
