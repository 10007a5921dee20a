/**
 * POST /api/v1/messages: inject one message or a batch, as raw RFC 5322 with an envelope or as
 * structured fields. Answers 202 only once every message is durable; any bad message refuses
 * the whole batch with a coded error naming it, and nothing is queued.
 * GET /api/v1/messages/{id}: a message's records and its recipients still waiting.
 */
import type { FastifyInstance } from 'fastify';
import addressparser from 'nodemailer/lib/addressparser';
import { GridpostError, type ErrorCode } from '../../errors/catalogue.js';
import { addressProblem } from '../../intake/addresses.js';
import { composeMessage } from '../../intake/compose.js';
import { refusalReply, type Offer, type OfferResult } from '../../intake/intake.js';
import type { ApiContext } from '../server.js';
import {
  acceptedSchema,
  errorSchema,
  messageBodySchema,
  type ApiMessage,
} from './message-schema.js';

/** Registers the message routes. */
export function messageRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.post(
    '/api/v1/messages',
    {
      schema: {
        summary: 'Inject one message or a batch; 202 once every message is durable',
        body: messageBodySchema,
        response: { 202: acceptedSchema, '4xx': errorSchema, '5xx': errorSchema },
      },
    },
    async (req, reply) => {
      const started = performance.now();
      const body = req.body as { messages?: ApiMessage[] } & ApiMessage;
      const items = body.messages ?? [body];
      const client = { apiKey: req.apiKeyName, ip: req.ip };
      const offers = await Promise.all(items.map((m, i) => toOffer(ctx, m, i, client)));
      const results = await ctx.intake.offer(offers);
      const refusedAt = results.findIndex((r) => !r.ok && r.refusal.reason !== 'batch-refused');
      if (refusedAt >= 0) {
        noteRefusal(ctx, offers[refusedAt]!, results[refusedAt]!);
        throw refusalError(results[refusedAt]!, refusedAt);
      }
      ctx.metrics.injectionLatency.observe({ via: 'http' }, (performance.now() - started) / 1000);
      const messages = results.map((r) => (r.ok ? summary(r.accepted) : null));
      return reply.code(202).send({ messages });
    },
  );
  app.get(
    '/api/v1/messages/:id',
    { schema: { summary: "A message's records and waiting recipients", params: idParams } },
    async (req) => {
      const { id } = req.params as { id: string };
      const records = ctx.recorder.forMessage(id);
      const waiting = ctx.spool.waiting(id);
      if (records.length === 0 && waiting.length === 0) {
        throw new GridpostError('E_NOT_FOUND', `no message ${id}`);
      }
      return { id, waiting, records };
    },
  );
}

const idParams = {
  type: 'object',
  properties: { id: { type: 'string', pattern: '^[A-Z0-9]{6,40}$' } },
  required: ['id'],
} as const;

function summary(a: { messageId: string; recipients: { id: string; address: string }[] }) {
  return {
    id: a.messageId,
    recipients: a.recipients.map((r) => ({ id: r.id, address: r.address })),
  };
}

/** Turns one API message into an intake offer, checking what intake cannot know. */
async function toOffer(
  ctx: ApiContext,
  m: ApiMessage,
  i: number,
  client: Offer['client'],
): Promise<Offer> {
  const at = `messages[${i}]`;
  const queue = m.queue;
  const policy = ctx.policy.current;
  if (queue !== undefined && !policy.hasQueue(queue)) {
    throw new GridpostError('E_UNKNOWN_QUEUE', `${at}.queue: no queue "${queue}"`, {
      path: `${at}.queue`,
    });
  }
  if (m.pool !== undefined && !policy.pool(m.pool)) {
    throw new GridpostError('E_UNKNOWN_POOL', `${at}.pool: no pool "${m.pool}"`, {
      path: `${at}.pool`,
    });
  }
  const { sender, recipients, raw } = await contentOf(ctx, m, at);
  checkEnvelope(ctx, sender, recipients, at);
  if (raw.length > ctx.config.smtp.maxMessageSize) {
    const limit = ctx.config.smtp.maxMessageSize;
    throw new GridpostError('E_MESSAGE_TOO_LARGE', `${at}: ${raw.length} bytes, limit ${limit}`, {
      path: at,
    });
  }
  const listUnsubscribe = m.listUnsubscribe;
  return { sender, recipients, raw, queue, pool: m.pool, listUnsubscribe, via: 'http', client };
}

async function contentOf(ctx: ApiContext, m: ApiMessage, at: string) {
  if (m.raw !== undefined) {
    if (!m.envelope) {
      throw new GridpostError('E_VALIDATION', `${at}.envelope: required with raw`, {
        path: `${at}.envelope`,
      });
    }
    return { sender: m.envelope.from, recipients: m.envelope.to, raw: Buffer.from(m.raw, 'utf8') };
  }
  if (!m.from || !m.to) {
    const path = `${at}.${m.from ? 'to' : 'from'}`;
    throw new GridpostError('E_VALIDATION', `${path}: required without raw`, { path });
  }
  const to = list(m.to);
  const cc = list(m.cc);
  const raw = await composeMessage({ ...m, from: m.from, to, cc }, ctx.config.hostname);
  const sender = m.envelope?.from ?? bareAddress(m.from);
  const recipients = m.envelope?.to ?? [...to, ...cc, ...list(m.bcc)].map(bareAddress);
  return { sender, recipients, raw };
}

function checkEnvelope(ctx: ApiContext, sender: string, recipients: string[], at: string): void {
  if (sender !== '') badAddress(sender, `${at}.envelope.from`);
  recipients.forEach((r, j) => badAddress(r, `${at}.envelope.to[${j}]`));
  if (recipients.length === 0) {
    throw new GridpostError('E_VALIDATION', `${at}: no recipient`, { path: `${at}.to` });
  }
  if (recipients.length > ctx.config.smtp.maxRecipients) {
    const msg = `${at}: ${recipients.length} recipients, limit ${ctx.config.smtp.maxRecipients}`;
    throw new GridpostError('E_TOO_MANY_RECIPIENTS', msg, { path: at });
  }
}

function badAddress(address: string, path: string): void {
  const problem = addressProblem(address);
  if (problem)
    throw new GridpostError('E_BAD_ADDRESS', `${path}: "${address}" ${problem}`, { path });
}

function list(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** "Ann <ann@example.com>" -> "ann@example.com". */
function bareAddress(v: string): string {
  const parsed = addressparser(v, { flatten: true });
  return parsed[0]?.address || v;
}

function refusalError(
  r: { ok: false; refusal: { reason: string; text: string } } | { ok: true },
  i: number,
) {
  const refusal = (r as { refusal: { reason: string; text: string } }).refusal;
  const code = REFUSAL_CODES[refusal.reason] ?? 'E_BAD_MESSAGE';
  return new GridpostError(code, `messages[${i}]: ${refusal.text}`, { path: `messages[${i}]` });
}

/** The Rejected record of a refused message (not of the batch's others, which were fine). */
function noteRefusal(ctx: ApiContext, offer: Offer, r: OfferResult): void {
  if (r.ok || r.refusal.reason === 'storage') return;
  ctx.intake.rejected({
    via: 'http',
    sender: offer.sender,
    reason: r.refusal.reason,
    reply: refusalReply(r.refusal),
    client: { ip: offer.client.ip, apiKey: offer.client.apiKey },
  });
}

/** The API error code of each intake refusal reason (E_BAD_MESSAGE for the others). */
const REFUSAL_CODES: Record<string, ErrorCode> = {
  storage: 'E_STORAGE',
  suppressed: 'E_SUPPRESSED',
  'bad-structure': 'E_CHECK_STRUCTURE',
  'unknown-maildomain': 'E_CHECK_FROM_DOMAIN',
  'dkim-unaligned': 'E_CHECK_ALIGNMENT',
  'no-list-unsubscribe': 'E_CHECK_LIST_UNSUBSCRIBE',
  'smime-refused': 'E_SMIME_REFUSED',
};
