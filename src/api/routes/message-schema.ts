/** JSON schema of the messages accepted by POST /api/v1/messages (also in the OpenAPI document). */

const addressList = {
  anyOf: [
    { type: 'string', minLength: 3 },
    { type: 'array', items: { type: 'string', minLength: 3 }, minItems: 1 },
  ],
} as const;

export const messageSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    queue: { type: 'string', description: 'Queue name; "default" when absent' },
    pool: {
      type: 'string',
      description: "Egress pool; the queue's pool when absent",
    },
    listUnsubscribe: {
      type: 'boolean',
      description:
        "Add a one-click unsubscribe link (RFC 8058) for a single-recipient message; the queue's setting when absent",
    },
    envelope: {
      type: 'object',
      additionalProperties: false,
      required: ['from', 'to'],
      properties: {
        from: { type: 'string', description: 'Envelope sender; "" for the null sender' },
        to: { type: 'array', items: { type: 'string' }, minItems: 1 },
      },
    },
    raw: { type: 'string', minLength: 1, description: 'The whole RFC 5322 message' },
    from: { type: 'string', minLength: 3 },
    to: addressList,
    cc: addressList,
    bcc: addressList,
    subject: { type: 'string' },
    text: { type: 'string' },
    html: { type: 'string' },
    headers: { type: 'object', additionalProperties: { type: 'string' } },
  },
} as const;

/** One message, or { messages: [...] } with up to 1,000 of them. if/then/else (not anyOf) so
 * that a validation error names the field of the form that was meant. */
export const messageBodySchema = {
  type: 'object',
  if: { required: ['messages'] },
  then: {
    type: 'object',
    additionalProperties: false,
    required: ['messages'],
    properties: { messages: { type: 'array', items: messageSchema, minItems: 1, maxItems: 1000 } },
  },
  else: messageSchema,
} as const;

/** A message as the API takes it (validated against messageSchema). */
export interface ApiMessage {
  queue?: string;
  pool?: string;
  listUnsubscribe?: boolean;
  envelope?: { from: string; to: string[] };
  raw?: string;
  from?: string;
  to?: string | string[];
  cc?: string | string[];
  bcc?: string | string[];
  subject?: string;
  text?: string;
  html?: string;
  headers?: Record<string, string>;
}

/** The 202 answer: each message's id and its recipients' ids, in the order given. */
export const acceptedSchema = {
  type: 'object',
  properties: {
    messages: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          id: { type: 'string' },
          recipients: {
            type: 'array',
            items: {
              type: 'object',
              properties: { id: { type: 'string' }, address: { type: 'string' } },
            },
          },
        },
      },
    },
  },
} as const;

/** Every error answer (docs/errors.md lists the codes). */
export const errorSchema = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: {
        code: { type: 'string' },
        message: { type: 'string' },
        path: { type: 'string' },
        fix: { type: 'string' },
      },
    },
  },
} as const;
