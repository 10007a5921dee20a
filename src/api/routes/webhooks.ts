/**
 * Webhook endpoints over HTTP: list them with their delivery state (cursor, lag, failures,
 * next attempt), add or change one (the secret is answered once, at creation), delete one.
 */
import type { FastifyInstance } from 'fastify';
import { RECORD_TYPES } from '../../records/types.js';
import { GridpostError } from '../../errors/catalogue.js';
import type { ApiContext } from '../server.js';
import { errorSchema } from './message-schema.js';

const errors = { '4xx': errorSchema, '5xx': errorSchema };
const nameParams = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', pattern: '^[a-z0-9][a-z0-9_.-]{0,63}$' } },
} as const;
const state = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    url: { type: 'string' },
    types: { type: 'array', items: { type: 'string' } },
    batchSize: { type: 'integer' },
    cursor: { type: 'integer' },
    lag: { type: 'integer' },
    state: { type: 'string', enum: ['idle', 'sending', 'retrying'] },
    failures: { type: 'integer' },
    delivered: { type: 'integer' },
    failingSince: { type: 'string' },
    nextAttemptAt: { type: 'string' },
    lastError: { type: 'string' },
    secret: { type: 'string', description: 'only in the answer that created the endpoint' },
  },
} as const;

interface Body {
  url: string;
  types?: string[];
  batchSize?: number;
  /** "now" (default): records from now on; "start": every record still kept. */
  from?: 'now' | 'start';
}

/** Registers the webhook routes. */
export function webhookRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get(
    '/api/v1/webhooks',
    {
      schema: {
        summary: 'Webhook endpoints with their delivery state',
        response: {
          200: { type: 'object', properties: { webhooks: { type: 'array', items: state } } },
          ...errors,
        },
      },
    },
    () => ({ webhooks: ctx.webhooks.states() }),
  );
  app.put<{ Params: { name: string }; Body: Body }>(
    '/api/v1/webhooks/:name',
    {
      schema: {
        summary: 'Add or change an endpoint; a new one answers its signing secret, once',
        params: nameParams,
        body: {
          type: 'object',
          required: ['url'],
          additionalProperties: false,
          properties: {
            url: { type: 'string', pattern: '^https?://', maxLength: 2000 },
            types: { type: 'array', items: { type: 'string', enum: [...RECORD_TYPES] } },
            batchSize: { type: 'integer', minimum: 1, maximum: 1000 },
            from: { type: 'string', enum: ['now', 'start'] },
          },
        },
        response: { 200: state, ...errors },
      },
    },
    (req) => {
      const { url, types = [], batchSize = 100, from } = req.body;
      const name = req.params.name;
      const { secret } = ctx.webhooks.put(
        { name, url, types, batchSize },
        from === 'start' ? 0 : undefined,
      );
      const s = ctx.webhooks.states().find((w) => w.name === name)!;
      return secret ? { ...s, secret } : s;
    },
  );
  app.delete<{ Params: { name: string } }>(
    '/api/v1/webhooks/:name',
    {
      schema: {
        summary: 'Delete an endpoint',
        params: nameParams,
        response: { 204: { type: 'null' }, ...errors },
      },
    },
    (req, reply) => {
      if (!ctx.webhooks.remove(req.params.name)) {
        throw new GridpostError('E_NOT_FOUND', `no webhook "${req.params.name}"`, { path: 'name' });
      }
      return reply.code(204).send();
    },
  );
}
