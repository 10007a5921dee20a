/**
 * The suppression list over HTTP: list (paged by address), one address, add, remove, and
 * import and export as CSV. Answers never include anything but the list itself.
 */
import type { FastifyInstance } from 'fastify';
import { parseCsv, toCsv } from '../../feedback/suppression-csv.js';
import { SUPPRESSION_REASONS, type SuppressionReason } from '../../feedback/suppression.js';
import { GridpostError } from '../../errors/catalogue.js';
import { addressProblem } from '../../intake/addresses.js';
import type { ApiContext } from '../server.js';
import { errorSchema } from './message-schema.js';

const errors = { '4xx': errorSchema, '5xx': errorSchema };
const entry = {
  type: 'object',
  properties: {
    address: { type: 'string' },
    reason: { type: 'string', enum: [...SUPPRESSION_REASONS] },
    source: { type: 'string' },
    at: { type: 'string' },
  },
} as const;
const addressParams = {
  type: 'object',
  required: ['address'],
  properties: { address: { type: 'string', maxLength: 320 } },
} as const;
// Addresses per export request at most (page with ?after= for more).
const EXPORT_LIMIT = 1_000_000;

/** Registers the suppression routes. */
export function suppressionRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const list = ctx.suppressions;
  app.addContentTypeParser('text/csv', { parseAs: 'string' }, (_req, body, done) =>
    done(null, body),
  );
  app.get<{ Querystring: { after?: string; limit?: string } }>(
    '/api/v1/suppressions',
    {
      schema: {
        summary: 'Suppressed addresses in address order, after ?after=, at most ?limit= (1000)',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            after: { type: 'string' },
            limit: { type: 'string', pattern: '^([1-9]\\d{0,2}|1000)$' },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              total: { type: 'integer' },
              suppressions: { type: 'array', items: entry },
            },
          },
          ...errors,
        },
      },
    },
    (req) => ({
      total: list.size,
      suppressions: list.page(req.query.after ?? '', Number(req.query.limit ?? 100)),
    }),
  );
  app.get<{ Params: { address: string } }>(
    '/api/v1/addresses/:address',
    {
      schema: {
        summary: 'What the engine holds about an address: its suppression and its tags',
        params: addressParams,
        response: {
          200: {
            type: 'object',
            properties: {
              address: { type: 'string' },
              suppression: { ...entry, nullable: true },
              tags: { type: 'array', items: { type: 'string' } },
            },
          },
          ...errors,
        },
      },
    },
    (req) => {
      const address = req.params.address.toLowerCase();
      const suppression = list.get(address) ?? null;
      return { address, suppression, tags: ctx.feedbackRules.tagsOf(address) };
    },
  );
  app.get<{ Params: { address: string } }>(
    '/api/v1/suppressions/:address',
    {
      schema: {
        summary: 'One address on the list',
        params: addressParams,
        response: { 200: entry, ...errors },
      },
    },
    (req) => {
      const e = list.get(req.params.address);
      if (!e)
        throw new GridpostError('E_NOT_FOUND', `${req.params.address} is not suppressed`, {
          path: 'address',
        });
      return e;
    },
  );
  app.put<{ Params: { address: string }; Body: { reason?: SuppressionReason } }>(
    '/api/v1/suppressions/:address',
    {
      schema: {
        summary: 'Suppress an address (reason "manual" unless given)',
        params: addressParams,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { reason: { type: 'string', enum: [...SUPPRESSION_REASONS] } },
        },
        response: { 200: entry, ...errors },
      },
    },
    async (req) => {
      const address = req.params.address;
      const problem = addressProblem(address);
      if (problem)
        throw new GridpostError('E_BAD_ADDRESS', `address: ${problem}`, { path: 'address' });
      await list.add([
        { address, reason: req.body?.reason ?? 'manual', source: `api:${req.apiKeyName ?? ''}` },
      ]);
      return list.get(address)!;
    },
  );
  app.delete<{ Params: { address: string } }>(
    '/api/v1/suppressions/:address',
    {
      schema: {
        summary: 'Take an address off the list',
        params: addressParams,
        response: { 204: { type: 'null' }, ...errors },
      },
    },
    async (req, reply) => {
      if (!(await list.remove(req.params.address))) {
        throw new GridpostError('E_NOT_FOUND', `${req.params.address} is not suppressed`, {
          path: 'address',
        });
      }
      return reply.code(204).send();
    },
  );
  app.post<{ Body: string }>(
    '/api/v1/suppressions/import',
    {
      schema: {
        summary: 'Import CSV (address[,reason]); answers how many were added and the bad lines',
        response: {
          200: {
            type: 'object',
            properties: {
              read: { type: 'integer' },
              added: { type: 'integer' },
              errors: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: { line: { type: 'integer' }, message: { type: 'string' } },
                },
              },
            },
          },
          ...errors,
        },
      },
    },
    async (req) => {
      if (typeof req.body !== 'string') {
        throw new GridpostError('E_VALIDATION', 'body: send CSV with Content-Type: text/csv', {
          path: 'body',
        });
      }
      const parsed = parseCsv(req.body, 'import');
      const added = await list.add(parsed.entries);
      return { read: parsed.entries.length, added, errors: parsed.errors };
    },
  );
  app.get(
    '/api/v1/suppressions/export',
    { schema: { summary: 'The whole list as CSV (address,reason,source,at)' } },
    (_req, reply) => reply.type('text/csv; charset=utf-8').send(toCsv(list.page('', EXPORT_LIMIT))),
  );
}
