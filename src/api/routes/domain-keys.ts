/**
 * Domain keys (DKIM) over HTTP: generate or import, list, look up in DNS (a pending key that
 * DNS shows starts signing), activate, retire, delete. Answers give the TXT record to publish;
 * the private key is never part of any answer.
 */
import type { FastifyInstance } from 'fastify';
import type { KeyInput } from '../../maildomains/maildomains.js';
import type { ApiContext } from '../server.js';
import { errorSchema } from './message-schema.js';
import { domainParams, keyParams, keySchema } from './maildomain-schema.js';

const errors = { '4xx': errorSchema, '5xx': errorSchema };
type KeyRoute = { Params: { domain: string; selector: string } };

/** Registers the domain-key routes. */
export function domainKeyRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const md = ctx.maildomains.domains;
  app.get<{ Params: { domain: string } }>(
    '/api/v1/maildomains/:domain/keys',
    {
      schema: {
        summary: 'The domain keys of a maildomain, with their state and TXT record',
        params: domainParams,
        response: {
          200: { type: 'object', properties: { keys: { type: 'array', items: keySchema } } },
          ...errors,
        },
      },
    },
    (req) => ({ keys: md.keysOf(req.params.domain) }),
  );
  app.post<{ Params: { domain: string }; Body: KeyInput }>(
    '/api/v1/maildomains/:domain/keys',
    {
      schema: {
        summary:
          'Generate (algorithm, bits) or import (privateKey, PEM) a key; it is pending until DNS shows it',
        params: domainParams,
        body: {
          type: 'object',
          required: ['selector'],
          additionalProperties: false,
          properties: {
            selector: keyParams.properties.selector,
            algorithm: { type: 'string', enum: ['rsa', 'ed25519'] },
            bits: { type: 'integer', enum: [1024, 2048, 3072, 4096] },
            privateKey: { type: 'string', maxLength: 20000 },
          },
        },
        response: { 201: keySchema, ...errors },
      },
    },
    async (req, reply) => reply.code(201).send(await md.addKey(req.params.domain, req.body)),
  );
  app.get<KeyRoute>(
    '/api/v1/maildomains/:domain/keys/:selector',
    {
      schema: {
        summary: 'One domain key',
        params: keyParams,
        response: { 200: keySchema, ...errors },
      },
    },
    (req) => md.key(req.params.domain, req.params.selector),
  );
  app.post<KeyRoute>(
    '/api/v1/maildomains/:domain/keys/:selector/check',
    {
      schema: {
        summary: 'Look the key up in DNS now; a pending key that DNS shows becomes active',
        params: keyParams,
        response: { 200: keySchema, ...errors },
      },
    },
    (req) => md.checkKey(req.params.domain, req.params.selector, ctx.maildomains.lookup),
  );
  app.post<KeyRoute & { Body: { force?: boolean } }>(
    '/api/v1/maildomains/:domain/keys/:selector/activate',
    {
      schema: {
        summary: 'Activate a pending key (refused until DNS shows it, unless force)',
        params: keyParams,
        body: {
          type: ['object', 'null'],
          additionalProperties: false,
          properties: { force: { type: 'boolean' } },
        },
        response: { 200: keySchema, ...errors },
      },
    },
    (req) => md.activateKey(req.params.domain, req.params.selector, req.body?.force === true),
  );
  app.post<KeyRoute>(
    '/api/v1/maildomains/:domain/keys/:selector/retire',
    {
      schema: {
        summary: 'Stop an active key signing; it stays valid for maildomains.keyGrace',
        params: keyParams,
        response: { 200: keySchema, ...errors },
      },
    },
    (req) => md.retireKey(req.params.domain, req.params.selector),
  );
  app.delete<KeyRoute>(
    '/api/v1/maildomains/:domain/keys/:selector',
    {
      schema: {
        summary: 'Delete a pending or retired key and its private key file',
        params: keyParams,
        response: { 204: { type: 'null' }, ...errors },
      },
    },
    async (req, reply) => {
      await md.deleteKey(req.params.domain, req.params.selector);
      return reply.code(204).send();
    },
  );
}
