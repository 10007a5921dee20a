/**
 * The traffic as an operator steers it: queues and ready queues with their state and reason,
 * pauses of a queue, a site or an egress source, and the actions response rules started
 * (listed, and lifted before their time).
 *
 * Site names are the site's MX host names joined by commas ("mx1.example.net,mx2.example.net",
 * or "route:..." for a static route): URL-encode them in the path.
 */
import type { FastifyInstance } from 'fastify';
import type { Controls } from '../../engine/controls.js';
import { GridpostError } from '../../errors/catalogue.js';
import type { PauseKind } from '../../shaping/policy-service.js';
import type { ApiContext } from '../server.js';
import { errorSchema } from './message-schema.js';
import {
  actionSchema,
  pauseSchema,
  queueStateSchema,
  readyQueueStateSchema,
} from './traffic-schema.js';

const errors = { '4xx': errorSchema, '5xx': errorSchema };

const nameParams = (key: string, description: string) =>
  ({
    type: 'object',
    required: [key],
    properties: { [key]: { type: 'string', minLength: 1, maxLength: 1000, description } },
  }) as const;

const resumedSchema = {
  type: 'object',
  properties: {
    kind: pauseSchema.properties.kind,
    name: { type: 'string' },
    resumed: { type: 'boolean', description: 'false: it was not paused' },
  },
} as const;

/** Registers the queue, ready queue, pause and action routes. */
export function trafficRoutes(app: FastifyInstance, ctx: ApiContext): void {
  listRoutes(app, ctx.controls);
  pauseRoutes(app, ctx, 'queue', '/api/v1/queues/:name', 'name', 'queue name');
  pauseRoutes(app, ctx, 'site', '/api/v1/sites/:site', 'site', 'site name, URL-encoded');
  pauseRoutes(app, ctx, 'source', '/api/v1/sources/:name', 'name', 'egress source name');
  actionRoutes(app, ctx.controls);
}

function listRoutes(app: FastifyInstance, controls: Controls): void {
  app.get(
    '/api/v1/queues',
    {
      schema: {
        summary: 'Every queue with its size, state and the reason for it',
        response: { 200: listOf('queues', queueStateSchema), ...errors },
      },
    },
    () => ({ queues: controls.queues() }),
  );
  app.get(
    '/api/v1/ready-queues',
    {
      schema: {
        summary: 'Ready queues (egress source x site): blocked first, then the busiest',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { limit: { type: 'string', pattern: '^[1-9][0-9]{0,4}$' } },
        },
        response: { 200: listOf('readyQueues', readyQueueStateSchema), ...errors },
      },
    },
    (req) => {
      const { limit } = req.query as { limit?: string };
      return { readyQueues: controls.readyQueues(limit ? Number(limit) : undefined) };
    },
  );
  app.get(
    '/api/v1/pauses',
    {
      schema: {
        summary: 'Every pause in force (queues, sites, egress sources)',
        response: { 200: listOf('pauses', pauseSchema), ...errors },
      },
    },
    () => ({ pauses: controls.pauses() }),
  );
}

function pauseRoutes(
  app: FastifyInstance,
  ctx: ApiContext,
  kind: PauseKind,
  base: string,
  key: string,
  description: string,
): void {
  const params = nameParams(key, description);
  const nameOf = (p: unknown) => (p as Record<string, string>)[key]!;
  app.post(
    `${base}/pause`,
    {
      schema: {
        summary: `Pause a ${kind} (kept across restarts)`,
        params,
        response: { 200: pauseSchema, ...errors },
      },
    },
    (req) => ctx.controls.pause(kind, nameOf(req.params)),
  );
  app.post(
    `${base}/resume`,
    {
      schema: {
        summary: `Resume a ${kind}; what waited for it is due at once`,
        params,
        response: { 200: resumedSchema, ...errors },
      },
    },
    (req) => {
      const name = nameOf(req.params);
      checkResumable(ctx, kind, name);
      return { kind, name, resumed: ctx.controls.resume(kind, name) };
    },
  );
}

/** A name that is neither paused nor defined is a typo, not a no-op. */
function checkResumable(ctx: ApiContext, kind: PauseKind, name: string): void {
  if (ctx.policy.isPaused(kind, name)) return;
  const p = ctx.policy.current;
  if (kind === 'queue' && !p.hasQueue(name)) {
    throw new GridpostError('E_UNKNOWN_QUEUE', `no queue "${name}"`, { path: 'name' });
  }
  if (kind === 'source' && !p.source(name)) {
    throw new GridpostError('E_NOT_FOUND', `no source "${name}"`, { path: 'name' });
  }
}

function actionRoutes(app: FastifyInstance, controls: Controls): void {
  app.get(
    '/api/v1/actions',
    {
      schema: {
        summary: 'Actions of response rules in force (back-off, suspend, disable-source)',
        response: { 200: listOf('actions', actionSchema), ...errors },
      },
    },
    () => ({ actions: controls.actions() }),
  );
  app.delete(
    '/api/v1/actions/:id',
    {
      schema: {
        summary: 'Lift an action before its time; what it held is due at once',
        params: nameParams('id', 'action id'),
        response: { 200: actionSchema, ...errors },
      },
    },
    (req) => controls.lift((req.params as { id: string }).id),
  );
}

function listOf(key: string, items: object) {
  return { type: 'object', properties: { [key]: { type: 'array', items } } } as const;
}
