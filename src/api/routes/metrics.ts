/** GET /metrics: Prometheus text format (no API key: scrapers run on the operator's network). */
import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../server.js';

/** Registers the metrics route. */
export function metricsRoute(app: FastifyInstance, ctx: ApiContext): void {
  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    void reply.header('content-type', ctx.metrics.registry.contentType);
    return ctx.metrics.registry.metrics();
  });
}
