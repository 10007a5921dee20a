/** API authentication: every /api/ route needs "Authorization: Bearer KEY" (or X-Api-Key). */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { matchApiKey, type ApiKey } from '../engine/api-keys.js';
import { GridpostError } from '../errors/catalogue.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The name of the API key that authenticated the request. */
    apiKeyName?: string;
  }
}

/** An onRequest hook that refuses requests without a valid key (except /metrics). */
export function authenticate(keys: ApiKey[]) {
  return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (!req.url.startsWith('/api/')) return;
    const presented = bearer(req.headers.authorization) ?? header(req.headers['x-api-key']);
    if (!presented) return deny(reply, new GridpostError('E_AUTH_REQUIRED', 'no API key given'));
    const name = matchApiKey(keys, presented);
    if (!name) return deny(reply, new GridpostError('E_AUTH_INVALID', 'the API key is not valid'));
    req.apiKeyName = name;
  };
}

function deny(reply: FastifyReply, err: GridpostError): void {
  void reply.code(err.status).send(err.toJSON());
}

function bearer(value: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(value ?? '');
  return m?.[1];
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
