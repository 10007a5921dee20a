/**
 * Operator actions on waiting recipients: retry now, purge (each purged recipient gets an
 * AdminAction record), move to another queue or pool. The body selects recipients by queue,
 * domain, site, message id or recipient id (every field given must match). Purge and move
 * refuse an empty selection unless it says `all: true`, so that a forgotten flag in a script
 * cannot empty the whole engine.
 *
 * A site selection covers the recipients whose last attempt went to that site (the store
 * keeps it) and the untried recipients of the domains this engine has routed to the site.
 * Limitation: an untried recipient of a domain not yet routed since start (or beyond the 500
 * domains kept per site) is not selected by site; select by domain or queue to reach it.
 */
import type { FastifyInstance } from 'fastify';
import type { Selection } from '../../engine/controls.js';
import { GridpostError } from '../../errors/catalogue.js';
import type { ApiContext } from '../server.js';
import { errorSchema } from './message-schema.js';

const str = { type: 'string', minLength: 1, maxLength: 1000 } as const;

const selectionProperties = {
  queue: str,
  domain: str,
  site: {
    ...str,
    description:
      'a site name as GET /api/v1/ready-queues shows it; covers recipients last tried ' +
      'there and untried ones of the domains this engine has routed there',
  },
  messageId: str,
  recipientId: str,
  all: { type: 'boolean', description: 'true: an empty selection means every recipient' },
} as const;

const selectionSchema = {
  type: 'object',
  additionalProperties: false,
  properties: selectionProperties,
} as const;

const moveSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['to'],
  properties: {
    ...selectionProperties,
    to: {
      type: 'object',
      additionalProperties: false,
      properties: { queue: str, pool: str },
    },
  },
} as const;

const countSchema = {
  type: 'object',
  properties: { count: { type: 'integer', description: 'recipients affected' } },
} as const;

const errors = { '4xx': errorSchema, '5xx': errorSchema };

type Body = Selection & { all?: boolean; to?: { queue?: string; pool?: string } };

/** Registers the recipient action routes. */
export function recipientRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const route = (summary: string, body: object) => ({
    schema: { summary, body, response: { 200: countSchema, ...errors } },
  });
  const retry = route('Make the selected waiting recipients due now', selectionSchema);
  app.post('/api/v1/recipients/retry', retry, (req) => ({
    count: ctx.controls.retryNow(selection(req.body as Body | undefined)),
  }));
  const purge = route('End the selected recipients, an AdminAction record each', selectionSchema);
  app.post('/api/v1/recipients/purge', purge, async (req) => {
    const sel = guarded(req.body as Body | undefined);
    return { count: await ctx.controls.purge(sel) };
  });
  const move = route('Move the selected recipients to another queue and/or pool', moveSchema);
  app.post('/api/v1/recipients/move', move, async (req) => {
    const body = req.body as Body;
    const to = body.to ?? {};
    if (!to.queue && !to.pool) {
      throw new GridpostError('E_VALIDATION', 'to: give a queue, a pool or both', { path: 'to' });
    }
    return { count: await ctx.controls.move(guarded(body), to) };
  });
}

/** The selection of a body; domains compare in lower case as the store keeps them. */
function selection(body: Body | undefined): Selection {
  const sel: Selection = {};
  if (body?.queue) sel.queue = body.queue;
  if (body?.domain) sel.domain = body.domain.toLowerCase();
  if (body?.site) sel.site = body.site;
  if (body?.messageId) sel.messageId = body.messageId;
  if (body?.recipientId) sel.recipientId = body.recipientId;
  return sel;
}

/** The selection, refusing an empty one unless the body says all: true. */
function guarded(body: Body | undefined): Selection {
  const sel = selection(body);
  if (Object.keys(sel).length === 0 && body?.all !== true) {
    throw new GridpostError(
      'E_VALIDATION',
      'select something: give queue, domain, site, messageId or recipientId, ' +
        'or "all": true to act on every waiting recipient',
      { path: 'body' },
    );
  }
  return sel;
}
