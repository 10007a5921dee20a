/**
 * The traffic policy over HTTP: the whole document (GET as JSON or YAML, PUT to replace it,
 * with a dry run that only validates), and one entry of a section at a time (GET, PUT,
 * DELETE /api/v1/policy/{section}/{name}). Every change is validated as a whole document
 * first, so a bad entry or a dangling reference is refused with each bad key path, and nothing
 * changes.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { parse, stringify } from 'yaml';
import { GridpostError } from '../../errors/catalogue.js';
import { SECTIONS, type Section } from '../../shaping/policy-schema.js';
import { validatePolicy } from '../../shaping/policy-service.js';
import type { ApiContext } from '../server.js';
import { errorSchema } from './message-schema.js';

const YAML_TYPE = 'application/yaml';
const BODY_TYPES = ['application/json', YAML_TYPE, 'text/yaml'];

/** Parses an application/yaml or text/yaml body; a syntax error is E_BAD_YAML. */
export function yamlBodyParser(
  _req: FastifyRequest,
  body: string | Buffer,
  done: (err: Error | null, value?: unknown) => void,
): void {
  try {
    done(null, parse(body.toString()) ?? {});
  } catch (err) {
    const why = firstLine(err);
    done(new GridpostError('E_BAD_YAML', `the body is not valid YAML: ${why}`, { cause: err }));
  }
}

const documentSchema = {
  type: 'object',
  additionalProperties: true,
  description: 'The policy document as written: queues, sources, pools, providers, shaping, ...',
} as const;

const entrySchema = {
  type: 'object',
  additionalProperties: true,
  description: 'One entry of the section, as docs/policy.md describes it',
} as const;

const formatQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { format: { type: 'string', enum: ['json', 'yaml'] } },
} as const;

const putQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    dryRun: {
      type: 'string',
      enum: ['true', 'false'],
      description: 'true: validate only, change nothing',
    },
    format: formatQuery.properties.format,
  },
} as const;

const entryParams = {
  type: 'object',
  required: ['section', 'name'],
  properties: {
    section: { type: 'string', enum: [...SECTIONS] },
    name: { type: 'string', minLength: 1, maxLength: 200 },
  },
} as const;

const errors = { '4xx': errorSchema, '5xx': errorSchema };

/** Registers the policy routes. */
export function policyRoutes(app: FastifyInstance, ctx: ApiContext): void {
  documentRoutes(app, ctx);
  entryRoutes(app, ctx);
}

function documentRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get(
    '/api/v1/policy',
    {
      schema: {
        summary: 'The policy document (JSON; YAML with format=yaml or Accept: application/yaml)',
        querystring: formatQuery,
        response: { 200: documentSchema, ...errors },
      },
    },
    (req, reply) => answer(req, reply, ctx.policy.export()),
  );
  app.put(
    '/api/v1/policy',
    {
      schema: {
        summary: 'Replace the whole policy document (JSON or YAML body); dryRun validates only',
        consumes: BODY_TYPES,
        querystring: putQuery,
        body: documentSchema,
        response: { 200: documentSchema, ...errors },
      },
    },
    (req, reply) => {
      const dryRun = (req.query as { dryRun?: string }).dryRun === 'true';
      if (dryRun) validatePolicy(req.body, 'the policy document');
      else ctx.policy.apply(req.body, 'the policy document');
      return answer(req, reply, dryRun ? (req.body as object) : ctx.policy.export());
    },
  );
}

function entryRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const url = '/api/v1/policy/:section/:name';
  app.get(
    url,
    {
      schema: {
        summary: 'One entry of a policy section, as written',
        params: entryParams,
        querystring: formatQuery,
        response: { 200: entrySchema, ...errors },
      },
    },
    (req, reply) => {
      const { section, name } = req.params as { section: Section; name: string };
      return answer(req, reply, entryOf(ctx, section, name));
    },
  );
  app.put(
    url,
    {
      schema: {
        summary: 'Add or replace one entry of a policy section (JSON or YAML body)',
        consumes: BODY_TYPES,
        params: entryParams,
        querystring: putQuery,
        body: entrySchema,
        response: { 200: entrySchema, ...errors },
      },
    },
    (req, reply) => {
      const { section, name } = req.params as { section: Section; name: string };
      const dryRun = (req.query as { dryRun?: string }).dryRun === 'true';
      if (dryRun) validatePolicy(withEntry(ctx, section, name, req.body), 'the policy');
      else ctx.policy.put(section, name, req.body);
      return answer(req, reply, dryRun ? (req.body as object) : entryOf(ctx, section, name));
    },
  );
  app.delete(
    url,
    {
      schema: {
        summary: 'Delete one entry of a policy section (refused if something refers to it)',
        params: entryParams,
        response: { 204: { type: 'null', description: 'deleted' }, ...errors },
      },
    },
    async (req, reply) => {
      const { section, name } = req.params as { section: Section; name: string };
      if (!ctx.policy.remove(section, name)) throw missing(section, name);
      return reply.code(204).send();
    },
  );
}

function entryOf(ctx: ApiContext, section: Section, name: string): object {
  const entry = ctx.policy.get(section, name);
  if (entry === undefined) throw missing(section, name);
  return entry as object;
}

/** The document as it would be with one entry replaced (for a dry run). */
function withEntry(ctx: ApiContext, section: Section, name: string, entry: unknown) {
  const doc = ctx.policy.export();
  doc[section] = { ...(doc[section] as object | undefined), [name]: entry };
  return doc;
}

function missing(section: Section, name: string): GridpostError {
  return new GridpostError('E_NOT_FOUND', `no entry "${name}" in policy section ${section}`, {
    path: `${section}.${name}`,
  });
}

/** Sends JSON, or YAML text when the query or the Accept header asks for it. */
function answer(req: FastifyRequest, reply: FastifyReply, doc: object) {
  const { format } = req.query as { format?: 'json' | 'yaml' };
  const accept = req.headers.accept ?? '';
  const yaml =
    format === 'yaml' || (format === undefined && /\b(application|text)\/yaml\b/.test(accept));
  if (!yaml) return reply.send(doc);
  return reply.type(YAML_TYPE).send(stringify(doc));
}

/** The first line of a YAML parser error (the rest is a drawing of the spot). */
function firstLine(err: unknown): string {
  return err instanceof Error ? err.message.split('\n')[0]!.replace(/:$/, '') : String(err);
}
