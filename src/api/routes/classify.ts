/**
 * POST /api/v1/classify: what a reply means for the sender: its bounce category and class,
 * and the rule that decided (the installation's bounceRules first, then the shipped rules).
 */
import type { FastifyInstance } from 'fastify';
import { CATEGORIES, CLASSES } from '../../bounces/categories.js';
import { parseReplyText } from '../../bounces/reply-text.js';
import { GridpostError } from '../../errors/catalogue.js';
import type { ApiContext } from '../server.js';
import { errorSchema } from './message-schema.js';

/** Registers the classify route. */
export function classifyRoute(app: FastifyInstance, ctx: ApiContext): void {
  app.post<{ Body: { reply: string } }>(
    '/api/v1/classify',
    {
      schema: {
        summary: 'Classify a reply: bounce category, class and the rule that decided',
        body: {
          type: 'object',
          required: ['reply'],
          additionalProperties: false,
          properties: {
            reply: {
              type: 'string',
              maxLength: 10_000,
              description: 'A reply as a server sent it, e.g. "550 5.1.1 User unknown"',
            },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              reply: {
                type: 'object',
                properties: {
                  code: { type: 'integer' },
                  enhanced: { type: ['string', 'null'] },
                  text: { type: 'string' },
                },
              },
              category: { type: 'string', enum: [...CATEGORIES] },
              class: { type: 'string', enum: [...CLASSES] },
              rule: { type: 'string' },
            },
          },
          '4xx': errorSchema,
        },
      },
    },
    (req) => {
      const reply = parseReplyText(req.body.reply);
      if (!reply) {
        throw new GridpostError(
          'E_VALIDATION',
          'reply: expected a reply that starts with its code, e.g. "550 5.1.1 User unknown"',
          { path: 'reply' },
        );
      }
      return { reply, ...ctx.policy.current.classifier.classify(reply) };
    },
  );
}
