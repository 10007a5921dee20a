/**
 * The one-click unsubscribe endpoint (RFC 8058), outside /api/: no key, the signed token is
 * the authority. POST with "List-Unsubscribe=One-Click" suppresses the address (reason
 * unsubscribe); GET only shows a page with a button, since link scanners follow GETs
 * (RFC 8058 §3.2). A token that does not verify gets the same 404 as a wrong path.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ApiContext } from '../server.js';

const FORM_TYPES = ['application/x-www-form-urlencoded', 'multipart/form-data'];

/** Registers GET and POST /unsubscribe/:token. */
export function unsubscribeRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.addContentTypeParser(FORM_TYPES, { parseAs: 'string' }, (_req, body, done) =>
    done(null, body),
  );
  const params = { type: 'object', properties: { token: { type: 'string', maxLength: 2000 } } };
  app.get<{ Params: { token: string } }>(
    '/unsubscribe/:token',
    { schema: { hide: true, params } },
    (req, reply) => {
      const claim = ctx.unsubscribe.verify(req.params.token);
      if (!claim) return unknown(reply);
      return reply.type('text/html; charset=utf-8').send(page(claim.address));
    },
  );
  app.post<{ Params: { token: string }; Body: unknown }>(
    '/unsubscribe/:token',
    { schema: { hide: true, params } },
    async (req, reply) => {
      const claim = ctx.unsubscribe.verify(req.params.token);
      if (!claim) return unknown(reply);
      const body = typeof req.body === 'string' ? req.body : '';
      if (!/List-Unsubscribe=One-Click|name="List-Unsubscribe"[^]*One-Click/i.test(body)) {
        return reply.code(400).type('text/plain').send('expected List-Unsubscribe=One-Click\n');
      }
      const source = `unsubscribe:${claim.messageId}`;
      await ctx.suppressions.add([{ address: claim.address, reason: 'unsubscribe', source }]);
      return reply.type('text/plain; charset=utf-8').send('unsubscribed\n');
    },
  );
}

function unknown(reply: FastifyReply) {
  return reply.code(404).type('text/plain').send('unknown link\n');
}

/** A page with one button that POSTs the one-click body. */
function page(address: string): string {
  const safe = address.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!doctype html><meta charset="utf-8"><title>Unsubscribe</title>
<p>Stop sending mail to ${safe}?</p>
<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button></form>\n`;
}
