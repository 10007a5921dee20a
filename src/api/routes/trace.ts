/** GET /api/v1/trace?q=<message id | recipient address>: the full history of a recipient. */
import type { FastifyInstance } from 'fastify';
import { GridpostError } from '../../errors/catalogue.js';
import { messageIdOf } from '../../spool/ids.js';
import type { ApiContext } from '../server.js';

/** Registers the trace route. */
export function traceRoute(app: FastifyInstance, ctx: ApiContext): void {
  app.get(
    '/api/v1/trace',
    {
      schema: {
        summary: 'Records of a message, a recipient id or a recipient address',
        querystring: {
          type: 'object',
          required: ['q'],
          properties: { q: { type: 'string', minLength: 1, maxLength: 320 } },
        },
      },
    },
    async (req) => {
      const { q } = req.query as { q: string };
      const result = trace(ctx, q.trim());
      if (result.records.length === 0 && result.waiting.length === 0) {
        throw new GridpostError('E_NOT_FOUND', `nothing recorded for "${q}"`);
      }
      return result;
    },
  );
}

function trace(ctx: ApiContext, q: string) {
  if (q.includes('@')) return traceAddress(ctx, q);
  const messageId = /\.\d+$/.test(q) ? (messageIdOf(q) ?? q) : q;
  const all = ctx.recorder.forMessage(messageId);
  const records = messageId === q ? all : all.filter((r) => touches(r, q));
  const waiting = ctx.spool.waiting(messageId).filter((w) => messageId === q || w.id === q);
  return { query: q, waiting, records };
}

function touches(r: { type: string }, recipientId: string): boolean {
  const rec = r as { recipientId?: string; recipients?: { id: string }[] };
  return rec.recipientId === recipientId || !!rec.recipients?.some((x) => x.id === recipientId);
}

/** An address's records, with the Reception of each of its messages and what still waits. */
function traceAddress(ctx: ApiContext, address: string) {
  const own = ctx.recorder.forRecipient(address);
  const attempted = own.map((r) => r.messageId).filter((id) => id !== undefined);
  const messageIds = [...new Set([...attempted, ...ctx.spool.messagesWaitingFor(address)])];
  const receptions = messageIds.flatMap((id) =>
    ctx.recorder.forMessage(id).filter((r) => r.type === 'Reception'),
  );
  const records = [...receptions, ...own].sort((a, b) => a.seq - b.seq);
  const lower = address.toLowerCase();
  const waiting = messageIds.flatMap((id) =>
    ctx.spool.waiting(id).filter((w) => w.address.toLowerCase() === lower),
  );
  return { query: address, waiting, records };
}
