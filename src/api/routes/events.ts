/**
 * GET /api/v1/events?after=CURSOR&limit=N: the records (the product's feedback) after a
 * cursor, oldest first, filtered by type, domain or message. A consumer that stores the
 * returned `next` and asks from it again gets every record exactly once, in order; only
 * durable records are served.
 */
import type { FastifyInstance } from 'fastify';
import { GridpostError } from '../../errors/catalogue.js';
import type { ApiContext } from '../server.js';
import { RECORD_TYPES } from '../../records/types.js';
import { errorSchema } from './message-schema.js';

interface Query {
  after?: string;
  limit?: string;
  type?: string;
  domain?: string;
  message?: string;
}

/** Registers the events route. */
export function eventsRoute(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Querystring: Query }>(
    '/api/v1/events',
    {
      schema: {
        summary: 'Records after a cursor, in order, each exactly once (feedback for consumers)',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            after: { type: 'string', pattern: '^\\d{1,15}$', description: 'cursor; 0 = start' },
            limit: { type: 'string', pattern: '^([1-9]\\d{0,2}|1000)$', description: '1..1000' },
            type: { type: 'string', description: `comma-separated: ${RECORD_TYPES.join(', ')}` },
            domain: { type: 'string', description: 'destination domain' },
            message: { type: 'string', description: 'message id' },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              events: { type: 'array', items: { type: 'object', additionalProperties: true } },
              next: { type: 'string', description: 'the cursor to ask from next' },
            },
          },
          '4xx': errorSchema,
        },
      },
    },
    (req) => {
      const q = req.query;
      const types = q.type ? q.type.split(',').map((t) => t.trim()) : undefined;
      const unknown = types?.find((t) => !(RECORD_TYPES as readonly string[]).includes(t));
      if (unknown) {
        throw new GridpostError(
          'E_VALIDATION',
          `type: no record type "${unknown}"; types: ${RECORD_TYPES.join(', ')}`,
          {
            path: 'type',
          },
        );
      }
      const { events, next } = ctx.recorder.events({
        after: Number(q.after ?? 0),
        limit: Number(q.limit ?? 100),
        types,
        domain: q.domain,
        messageId: q.message,
      });
      return { events, next: String(next) };
    },
  );
}
