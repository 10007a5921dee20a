/**
 * Certified accounts (S/MIME) over HTTP: import a certificate and key for a sender address
 * (PEM, or PKCS#12 in base64 with its password), list a maildomain's accounts, remove one.
 * Answers describe the certificate; the key is never part of any answer.
 */
import type { FastifyInstance } from 'fastify';
import { GridpostError } from '../../errors/catalogue.js';
import { addressProblem } from '../../intake/addresses.js';
import type { ApiContext } from '../server.js';
import { errorSchema } from './message-schema.js';
import { accountParams, accountSchema, domainParams } from './maildomain-schema.js';

const errors = { '4xx': errorSchema, '5xx': errorSchema };

interface Body {
  pem?: string;
  pkcs12?: string;
  password?: string;
}

/** Registers the certified-account routes. */
export function accountRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const md = ctx.maildomains.domains;
  app.get<{ Params: { domain: string } }>(
    '/api/v1/maildomains/:domain/accounts',
    {
      schema: {
        summary: 'The certified accounts of a maildomain',
        params: domainParams,
        response: {
          200: {
            type: 'object',
            properties: { accounts: { type: 'array', items: accountSchema } },
          },
          ...errors,
        },
      },
    },
    (req) => ({ accounts: md.accountsOf(req.params.domain) }),
  );
  app.put<{ Params: { address: string }; Body: Body }>(
    '/api/v1/accounts/:address',
    {
      schema: {
        summary: 'Certify a sender address: its certificate and key as PEM, or PKCS#12 (base64)',
        params: accountParams,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            pem: { type: 'string', maxLength: 200000 },
            pkcs12: { type: 'string', maxLength: 200000 },
            password: { type: 'string', maxLength: 1000 },
          },
        },
        response: { 200: accountSchema, ...errors },
      },
    },
    (req) => {
      const { address } = req.params;
      const problem = addressProblem(address);
      if (problem) throw new GridpostError('E_BAD_ADDRESS', `"${address}" ${problem}`);
      const { pem, pkcs12, password } = req.body;
      if (!pem === !pkcs12) {
        throw new GridpostError('E_VALIDATION', 'give either pem or pkcs12', { path: 'pem' });
      }
      const der = pkcs12 === undefined ? undefined : Buffer.from(pkcs12, 'base64');
      return md.putAccount(address, { pem, pkcs12: der, password });
    },
  );
  app.delete<{ Params: { address: string } }>(
    '/api/v1/accounts/:address',
    {
      schema: {
        summary: 'Remove a certified account and its key',
        params: accountParams,
        response: { 204: { type: 'null' }, ...errors },
      },
    },
    async (req, reply) => {
      await md.removeAccount(req.params.address);
      return reply.code(204).send();
    },
  );
}
