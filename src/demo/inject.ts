/**
 * The demo's client side: injects the planned messages into the engine as a sending platform
 * would, most through a few reused SMTP sessions and a part in batches through the HTTP API,
 * both at once. Counts what the engine accepted and what it refused.
 */
import {
  openSession,
  RFC5321_TIMEOUTS,
  type SmtpSession,
  type TransactionResult,
} from '../delivery/smtp-client.js';

/** Where the engine takes messages. */
export interface InjectTarget {
  smtp: { host: string; port: number };
  /** Base URL of the HTTP API, e.g. http://127.0.0.1:8025. */
  http: string;
  apiKey: string;
}

/** What to inject: message i goes to recipients[i], over HTTP when viaHttp(i). */
export interface InjectPlan {
  sender: string;
  recipients: string[];
  viaHttp(i: number): boolean;
}

/** Live counts of the injection, read by the progress line. */
export interface InjectCounts {
  /** Messages the engine accepted (250 or 202): durable from then on. */
  accepted: number;
  viaSmtp: number;
  viaHttp: number;
  httpRequests: number;
  /** Messages the engine refused, with the first refusal for the report. */
  refused: number;
  firstRefusal?: string;
}

/**
 * SMTP sessions injecting at once: a handful, as a sending platform keeps open to its MTA.
 * Each waits for the engine's durable 250 before it sends its next message.
 */
export const SMTP_SESSIONS = 4;
// Messages per POST /api/v1/messages (the API takes up to 1,000).
const HTTP_BATCH = 100;
const DISPLAY_FROM = 'Gridpost demo';

/**
 * Injects every planned message; resolves when each was accepted or refused, or once the
 * messages under way are answered after `signal` aborts.
 */
export async function injectAll(
  plan: InjectPlan,
  target: InjectTarget,
  counts: InjectCounts,
  signal?: AbortSignal,
): Promise<void> {
  const smtp: number[] = [];
  const http: number[] = [];
  plan.recipients.forEach((_to, i) => (plan.viaHttp(i) ? http : smtp).push(i));
  const nextSmtp = cursor(smtp, signal);
  const workers = Array.from({ length: Math.min(SMTP_SESSIONS, smtp.length) }, () =>
    smtpWorker(plan, target, nextSmtp, counts),
  );
  const batches = batchesOf(http, HTTP_BATCH);
  await Promise.all([...workers, httpBatches(plan, target, cursor(batches, signal), counts)]);
}

/** Zeroed counts. */
export function emptyCounts(): InjectCounts {
  return { accepted: 0, viaSmtp: 0, viaHttp: 0, httpRequests: 0, refused: 0 };
}

/** Hands out the items of a list once each, to workers sharing it, until `signal` aborts. */
function cursor<T>(items: T[], signal?: AbortSignal): () => T | undefined {
  let at = 0;
  return () => (signal?.aborted ? undefined : items[at++]);
}

function batchesOf<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let at = 0; at < items.length; at += size) out.push(items.slice(at, at + size));
  return out;
}

/** One SMTP session sending messages until none is left; reopens it if the engine drops it. */
async function smtpWorker(
  plan: InjectPlan,
  target: InjectTarget,
  next: () => number | undefined,
  counts: InjectCounts,
): Promise<void> {
  let session: SmtpSession | null = null;
  try {
    for (let i = next(); i !== undefined; i = next()) {
      if (!session?.usable) session = await openIntake(target);
      const to = plan.recipients[i]!;
      const result = await session.send({ from: plan.sender, recipients: [to] }, smtpBody(plan, i));
      countSmtp(result, counts);
    }
  } finally {
    await session?.close();
  }
}

/** Opens a session with the engine's SMTP intake; throws when the engine is not there. */
async function openIntake(target: InjectTarget): Promise<SmtpSession> {
  const opened = await openSession({
    ip: target.smtp.host,
    port: target.smtp.port,
    mxHost: 'localhost',
    helo: 'demo-platform.localhost',
    tls: 'disabled',
    timeouts: RFC5321_TIMEOUTS,
  });
  if (!opened.ok) {
    throw new Error(`demo: cannot open an SMTP session with the engine: ${opened.reply.text}`);
  }
  return opened.session;
}

function countSmtp(result: TransactionResult, counts: InjectCounts): void {
  const reply = result.data ?? result.recipients[0]?.reply ?? result.mail;
  if (reply.code === 250) {
    counts.accepted++;
    counts.viaSmtp++;
  } else {
    counts.refused++;
    counts.firstRefusal ??= `SMTP ${reply.code} ${reply.text}`;
  }
}

/** Posts the HTTP share batch after batch, one request at a time. */
async function httpBatches(
  plan: InjectPlan,
  target: InjectTarget,
  next: () => number[] | undefined,
  counts: InjectCounts,
): Promise<void> {
  for (let batch = next(); batch !== undefined; batch = next()) {
    const messages = batch.map((i) => ({
      from: `${DISPLAY_FROM} <${plan.sender}>`,
      to: plan.recipients[i]!,
      subject: subject(i),
      text: text(i),
    }));
    const res = await fetch(`${target.http}/api/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${target.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ messages }),
    });
    counts.httpRequests++;
    await countHttp(res, batch.length, counts);
  }
}

/** A batch is accepted or refused as a whole (202, or an error naming the bad message). */
async function countHttp(res: Response, n: number, counts: InjectCounts): Promise<void> {
  if (res.status === 202) {
    await res.body?.cancel();
    counts.accepted += n;
    counts.viaHttp += n;
    return;
  }
  const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
  counts.refused += n;
  counts.firstRefusal ??= `HTTP ${res.status} ${body?.error?.message ?? ''}`.trim();
}

/** The RFC 5322 message sent over SMTP (the intake adds Message-ID and Date). */
function smtpBody(plan: InjectPlan, i: number): Buffer {
  const head = [
    `From: ${DISPLAY_FROM} <${plan.sender}>`,
    `To: <${plan.recipients[i]}>`,
    `Subject: ${subject(i)}`,
  ];
  return Buffer.from(`${head.join('\r\n')}\r\n\r\n${text(i)}\r\n`);
}

function subject(i: number): string {
  return `Gridpost demo message ${i + 1}`;
}

function text(i: number): string {
  return `Hello,\r\n\r\nthis is message ${i + 1} of the Gridpost demo.\r\n`;
}
