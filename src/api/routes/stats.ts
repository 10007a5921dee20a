/**
 * GET /api/v1/stats: delivered, deferred, bounced, expired, suppressed and complained counts
 * over a time range, summed by any of hour, destination domain, site and bounce category.
 */
import type { FastifyInstance } from 'fastify';
import { GridpostError } from '../../errors/catalogue.js';
import { DIMENSIONS, OUTCOMES, type Dimension } from '../../records/stats.js';
import type { ApiContext } from '../server.js';
import { errorSchema } from './message-schema.js';

interface Query {
  from?: string;
  to?: string;
  by?: string;
  domain?: string;
  site?: string;
}

const DAY_MS = 86_400_000;

/** Registers the stats route. */
export function statsRoute(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Querystring: Query }>(
    '/api/v1/stats',
    {
      schema: {
        summary: 'Outcome counts by hour, domain, site and bounce category over a time range',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            from: { type: 'string', description: 'ISO-8601; default 24 hours before `to`' },
            to: { type: 'string', description: 'ISO-8601; default now' },
            by: { type: 'string', description: `comma-separated: ${DIMENSIONS.join(', ')}` },
            domain: { type: 'string' },
            site: { type: 'string' },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              from: { type: 'string' },
              to: { type: 'string' },
              by: { type: 'array', items: { type: 'string' } },
              rows: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: Object.fromEntries([
                    ...DIMENSIONS.map((d) => [d, { type: 'string' }]),
                    ...OUTCOMES.map((o) => [o, { type: 'integer' }]),
                  ]),
                },
              },
            },
          },
          '4xx': errorSchema,
        },
      },
    },
    (req) => {
      const q = req.query;
      const to = time(q.to, Date.now(), 'to');
      const from = time(q.from, to - DAY_MS, 'from');
      const by = (q.by ? q.by.split(',').map((d) => d.trim()) : []) as Dimension[];
      const bad = by.find((d) => !DIMENSIONS.includes(d));
      if (bad) {
        const allowed = DIMENSIONS.join(', ');
        throw new GridpostError('E_VALIDATION', `by: no dimension "${bad}"; allowed: ${allowed}`, {
          path: 'by',
        });
      }
      const rows = ctx.recorder.statistics({ from, to, by, domain: q.domain, site: q.site });
      return { from: new Date(from).toISOString(), to: new Date(to).toISOString(), by, rows };
    },
  );
}

function time(value: string | undefined, fallback: number, path: string): number {
  if (value === undefined) return fallback;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) {
    throw new GridpostError('E_VALIDATION', `${path}: expected an ISO-8601 time`, { path });
  }
  return ms;
}
