/**
 * The HTTP API (fastify): authentication by API key, a stable error body for every failure,
 * the OpenAPI document at /api/v1/openapi.json, and the routes, one file per resource.
 */
import swagger from '@fastify/swagger';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
} from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { ApiKey } from '../engine/api-keys.js';
import type { Controls } from '../engine/controls.js';
import type { StatusCount } from '../engine/status.js';
import { GridpostError } from '../errors/catalogue.js';
import type { Intake } from '../intake/intake.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Recorder } from '../records/recorder.js';
import type { SuppressionList } from '../feedback/suppression.js';
import type { UnsubscribeLinks } from '../feedback/unsubscribe.js';
import type { Webhooks } from '../feedback/webhooks.js';
import type { FeedbackRules } from '../feedback/rules.js';
import type { PolicyService } from '../shaping/policy-service.js';
import type { Spool } from '../spool/spool.js';
import { authenticate } from './auth.js';
import { classifyRoute } from './routes/classify.js';
import { eventsRoute } from './routes/events.js';
import { statsRoute } from './routes/stats.js';
import { suppressionRoutes } from './routes/suppressions.js';
import { unsubscribeRoutes } from './routes/unsubscribe.js';
import { webhookRoutes } from './routes/webhooks.js';
import { maildomainRoutes } from './routes/maildomains.js';
import { domainKeyRoutes } from './routes/domain-keys.js';
import { accountRoutes } from './routes/accounts.js';
import type { MaildomainWatch } from '../maildomains/watch.js';
import { messageRoutes } from './routes/messages.js';
import { metricsRoute } from './routes/metrics.js';
import { policyRoutes, yamlBodyParser } from './routes/policy.js';
import { recipientRoutes } from './routes/recipients.js';
import { statusRoute } from './routes/status.js';
import { traceRoute } from './routes/trace.js';
import { trafficRoutes } from './routes/traffic.js';

/** What the routes need from the engine. */
export interface ApiContext {
  config: Config;
  intake: Intake;
  recorder: Recorder;
  spool: Spool;
  status: StatusCount;
  metrics: Metrics;
  keys: ApiKey[];
  log: Logger;
  /** The traffic policy in force, and the operator's pauses. */
  policy: PolicyService;
  /** Queues, ready queues, pauses, purge, move, actions. */
  controls: Controls;
  /** The suppression list. */
  suppressions: SuppressionList;
  /** One-click unsubscribe links (RFC 8058). */
  unsubscribe: UnsubscribeLinks;
  /** Webhook endpoints and their delivery state. */
  webhooks: Webhooks;
  /** Feedback rules (the tags they set). */
  feedbackRules: FeedbackRules;
  /** Maildomains, their keys and accounts, and their DNS status. */
  maildomains: MaildomainWatch;
}

/** Builds the API server (not yet listening). */
export async function buildApi(ctx: ApiContext): Promise<FastifyInstance> {
  const app: FastifyInstance = Fastify({
    loggerInstance: ctx.log.child({ role: 'api' }) as FastifyBaseLogger,
    // One diagnostics line per request would drown the log at injection rates; errors are
    // still logged by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: ctx.config.http.bodyLimit,
    ajv: { customOptions: { allErrors: false, coerceTypes: false, removeAdditional: false } },
  });
  await app.register(swagger, {
    openapi: {
      info: { title: 'Gridpost engine API', version: '1' },
      components: {
        securitySchemes: { apiKey: { type: 'http', scheme: 'bearer' } },
      },
      security: [{ apiKey: [] }],
    },
  });
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) => {
    const err = new GridpostError('E_NOT_FOUND', `no route ${req.method} ${req.url}`);
    void reply.code(404).send(err.toJSON());
  });
  app.addContentTypeParser(
    ['application/yaml', 'text/yaml'],
    { parseAs: 'string' },
    yamlBodyParser,
  );
  app.addHook('onRequest', authenticate(ctx.keys));
  app.get('/api/v1/openapi.json', { schema: { hide: true } }, () => app.swagger());
  statusRoute(app, ctx);
  messageRoutes(app, ctx);
  traceRoute(app, ctx);
  classifyRoute(app, ctx);
  eventsRoute(app, ctx);
  statsRoute(app, ctx);
  suppressionRoutes(app, ctx);
  unsubscribeRoutes(app, ctx);
  webhookRoutes(app, ctx);
  metricsRoute(app, ctx);
  policyRoutes(app, ctx);
  trafficRoutes(app, ctx);
  recipientRoutes(app, ctx);
  maildomainRoutes(app, ctx);
  domainKeyRoutes(app, ctx);
  accountRoutes(app, ctx);
  return app;
}

/** Maps every error to the stable body { error: { code, message, path, fix } }. */
function errorHandler(err: FastifyError | GridpostError, _req: unknown, reply: FastifyReply): void {
  const e = toGridpostError(err);
  if (e.code === 'E_INTERNAL') reply.log.error({ err }, 'request failed');
  void reply.code(e.status).send(e.toJSON());
}

function toGridpostError(err: FastifyError | GridpostError): GridpostError {
  if (err instanceof GridpostError) return err;
  if (err.validation) {
    const v = err.validation[0];
    const path = (v?.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.');
    const params = v?.params as {
      missingProperty?: string;
      additionalProperty?: string;
      allowedValues?: unknown[];
    };
    const field = path || params?.missingProperty || params?.additionalProperty || 'body';
    // An enum says which values it allows, so the message can too.
    const allowed = params?.allowedValues ? `: ${params.allowedValues.join(', ')}` : '';
    return new GridpostError('E_VALIDATION', `${field}: ${v?.message ?? 'invalid'}${allowed}`, {
      path: field,
    });
  }
  if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError) {
    return new GridpostError('E_BAD_JSON', `the body is not valid JSON: ${err.message}`);
  }
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return new GridpostError(
      'E_MESSAGE_TOO_LARGE',
      'the request body is larger than http.bodyLimit',
    );
  }
  if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') {
    return new GridpostError('E_BAD_JSON', err.message);
  }
  if (err.statusCode && err.statusCode < 500) {
    return new GridpostError('E_VALIDATION', err.message);
  }
  return new GridpostError('E_INTERNAL', 'internal error', { cause: err });
}
