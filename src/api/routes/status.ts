/** GET /api/v1/status: what the engine treated since start, and the recipients per queue. */
import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../server.js';

/** The status document (also what `gridpost status` prints). */
export function statusDocument(ctx: ApiContext) {
  const sizes = ctx.spool.queueSizes();
  const queues = Object.keys(ctx.config.queues).map((name) => ({
    name,
    recipients: sizes.get(name) ?? 0,
  }));
  return {
    hostname: ctx.config.hostname,
    startedAt: new Date(ctx.status.startedAt).toISOString(),
    uptimeSeconds: Math.round((Date.now() - ctx.status.startedAt) / 1000),
    counters: { ...ctx.status.counters },
    queues,
    destinations: ctx.destinations(),
  };
}

const counter = { type: 'integer' } as const;

/** Registers the status route. */
export function statusRoute(app: FastifyInstance, ctx: ApiContext): void {
  app.get(
    '/api/v1/status',
    {
      schema: {
        summary: 'Live status: counters since start and recipients waiting per queue',
        response: {
          200: {
            type: 'object',
            properties: {
              hostname: { type: 'string' },
              startedAt: { type: 'string' },
              uptimeSeconds: counter,
              counters: {
                type: 'object',
                properties: {
                  received: counter,
                  recipientsReceived: counter,
                  delivered: counter,
                  deferred: counter,
                  bounced: counter,
                  expired: counter,
                  rejected: counter,
                },
              },
              queues: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: { name: { type: 'string' }, recipients: counter },
                },
              },
              destinations: {
                type: 'array',
                description: 'Busiest destinations; held ones first, with until when and why',
                items: {
                  type: 'object',
                  properties: {
                    domain: { type: 'string' },
                    state: { type: 'string', enum: ['active', 'idle', 'held'] },
                    ready: counter,
                    sessions: counter,
                    heldUntil: { type: 'string' },
                    reason: { type: 'string' },
                  },
                },
              },
            },
          },
        },
      },
    },
    () => statusDocument(ctx),
  );
}
