/**
 * Maildomains over HTTP: list, show (with the last DNS status), add or change, delete; the
 * live DNS status; the bulk-sender compliance report.
 */
import type { FastifyInstance } from 'fastify';
import { CANONICALIZATIONS, type MaildomainInput } from '../../maildomains/maildomains.js';
import type { ApiContext } from '../server.js';
import { errorSchema } from './message-schema.js';
import {
  complianceSchema,
  dnsStatusSchema,
  domainParams,
  maildomainSchema,
} from './maildomain-schema.js';

const errors = { '4xx': errorSchema, '5xx': errorSchema };
const hostOrNull = { type: ['string', 'null'], pattern: '^[A-Za-z0-9.-]{1,253}$' } as const;

/** Registers the maildomain routes. */
export function maildomainRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const watch = ctx.maildomains;
  const withDns = (domain: string) => {
    const view = watch.domains.get(domain);
    const dns = watch.lastStatus(view.domain);
    return dns ? { ...view, dns } : view;
  };
  app.get(
    '/api/v1/maildomains',
    {
      schema: {
        summary: 'Maildomains with their keys, certified accounts and warnings',
        response: {
          200: {
            type: 'object',
            properties: { maildomains: { type: 'array', items: maildomainSchema } },
          },
          ...errors,
        },
      },
    },
    () => ({ maildomains: watch.domains.list().map((m) => withDns(m.domain)) }),
  );
  app.get<{ Params: { domain: string } }>(
    '/api/v1/maildomains/:domain',
    {
      schema: {
        summary: 'One maildomain, with its last DNS status',
        params: domainParams,
        response: { 200: maildomainSchema, ...errors },
      },
    },
    (req) => withDns(req.params.domain),
  );
  app.put<{ Params: { domain: string }; Body: MaildomainInput }>(
    '/api/v1/maildomains/:domain',
    {
      schema: {
        summary: 'Add or change a maildomain (absent fields keep their value, null clears)',
        params: domainParams,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            defaultQueue: { type: ['string', 'null'], maxLength: 100 },
            returnPathDomain: hostOrNull,
            signingDomain: hostOrNull,
            canonicalization: { type: 'string', enum: [...CANONICALIZATIONS] },
          },
        },
        response: { 200: maildomainSchema, ...errors },
      },
    },
    (req) => watch.domains.put(req.params.domain, req.body ?? {}),
  );
  app.delete<{ Params: { domain: string } }>(
    '/api/v1/maildomains/:domain',
    {
      schema: {
        summary: 'Delete a maildomain with its keys and certified accounts',
        params: domainParams,
        response: { 204: { type: 'null' }, ...errors },
      },
    },
    async (req, reply) => {
      await watch.domains.remove(req.params.domain);
      return reply.code(204).send();
    },
  );
  app.get<{ Params: { domain: string } }>(
    '/api/v1/maildomains/:domain/dns',
    {
      schema: {
        summary:
          'Look up the DNS records the maildomain needs, now: ok, missing or wrong, with the fix',
        params: domainParams,
        response: { 200: dnsStatusSchema, ...errors },
      },
    },
    (req) => watch.check(req.params.domain),
  );
  app.get<{ Params: { domain: string } }>(
    '/api/v1/maildomains/:domain/compliance',
    {
      schema: {
        summary: 'The maildomain against the Gmail, Yahoo and Microsoft bulk-sender requirements',
        params: domainParams,
        response: { 200: complianceSchema, ...errors },
      },
    },
    (req) => watch.compliance(req.params.domain),
  );
}
