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
  if (q.includes('@')) return { query: q, waiting: [], records: ctx.recorder.forRecipient(q) };
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
