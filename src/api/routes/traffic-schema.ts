/** JSON schemas (OpenAPI) of the traffic documents: queues, ready queues, actions, pauses. */

const counter = { type: 'integer' } as const;
const str = { type: 'string' } as const;
const nullableStr = { type: ['string', 'null'] } as const;

/** A queue with its size and state. */
export const queueStateSchema = {
  type: 'object',
  properties: {
    name: str,
    weight: counter,
    pool: str,
    recipients: { ...counter, description: 'waiting or in delivery' },
    inMemory: counter,
    state: { type: 'string', enum: ['active', 'idle', 'paused'] },
    reason: nullableStr,
    defined: { type: 'boolean', description: 'false: not in the policy, still has recipients' },
  },
} as const;

/** An action of a response rule. */
export const actionSchema = {
  type: 'object',
  properties: {
    id: str,
    kind: { type: 'string', enum: ['backoff', 'suspend', 'disable-source'] },
    source: str,
    site: str,
    rule: str,
    cause: {
      type: 'object',
      properties: {
        reply: {
          type: 'object',
          properties: { code: counter, enhanced: nullableStr, text: str },
        },
        domain: str,
        mxHost: str,
      },
    },
    since: str,
    until: str,
    hits: counter,
    reason: str,
  },
} as const;

/** A ready queue (egress source x site) with its state, reason and limits. */
export const readyQueueStateSchema = {
  type: 'object',
  properties: {
    source: str,
    site: str,
    provider: nullableStr,
    domains: { type: 'array', items: str },
    state: {
      type: 'string',
      enum: ['running', 'idle', 'throttled', 'backoff', 'suspended', 'disabled', 'held', 'paused'],
    },
    reason: nullableStr,
    until: str,
    action: actionSchema,
    ready: counter,
    readyByQueue: { type: 'object', additionalProperties: counter },
    sessions: counter,
    limits: {
      type: 'object',
      properties: {
        maxConnections: counter,
        maxMessagesPerConnection: counter,
        maxRecipientsPerTransaction: counter,
        messageRate: nullableStr,
        connectionRate: nullableStr,
      },
    },
    rules: { type: 'array', items: str },
    heldBack: {
      type: 'object',
      description: 'recipients given back to the store because the ready queue was full',
      properties: { recipients: counter, last: str, reason: str },
    },
  },
} as const;

/** A pause in force. */
export const pauseSchema = {
  type: 'object',
  properties: {
    kind: { type: 'string', enum: ['queue', 'site', 'source'] },
    name: str,
    since: str,
  },
} as const;
