/**
 * GET /api/v1/status: what the engine treated since start, the queues with their size and
 * state, and the ready queues that are blocked or busiest, each with the reason for its state.
 */
import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../server.js';
import { queueStateSchema, readyQueueStateSchema } from './traffic-schema.js';

/** The status document (also what `gridpost status` prints). */
export function statusDocument(ctx: ApiContext) {
  const queues = ctx.controls.queues();
  return {
    hostname: ctx.config.hostname,
    startedAt: new Date(ctx.status.startedAt).toISOString(),
    uptimeSeconds: Math.round((Date.now() - ctx.status.startedAt) / 1000),
    counters: { ...ctx.status.counters },
    queues,
    readyQueues: ctx.controls.readyQueues(50),
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
              queues: { type: 'array', items: queueStateSchema },
              readyQueues: {
                type: 'array',
                description: 'Blocked ready queues first, then the busiest; each with its reason',
                items: readyQueueStateSchema,
              },
            },
          },
        },
      },
    },
    () => statusDocument(ctx),
  );
}
