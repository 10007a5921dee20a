/**
 * JSON schemas of the maildomain routes (maildomains, domain keys, certified accounts): what
 * the OpenAPI document shows and what fastify serialises. No schema has a field for a private
 * key, so none can ever be serialised into an answer.
 */
export const domainParams = {
  type: 'object',
  required: ['domain'],
  properties: { domain: { type: 'string', pattern: '^[A-Za-z0-9.-]{1,253}$' } },
} as const;

export const keyParams = {
  type: 'object',
  required: ['domain', 'selector'],
  properties: {
    domain: domainParams.properties.domain,
    selector: { type: 'string', pattern: '^[A-Za-z0-9.-]{1,63}$' },
  },
} as const;

export const accountParams = {
  type: 'object',
  required: ['address'],
  properties: { address: { type: 'string', maxLength: 320 } },
} as const;

const dnsRecord = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    type: { type: 'string' },
    value: { type: 'string' },
    strings: { type: 'array', items: { type: 'string' } },
  },
} as const;

export const keySchema = {
  type: 'object',
  properties: {
    domain: { type: 'string' },
    selector: { type: 'string' },
    algorithm: { type: 'string', enum: ['rsa-sha256', 'ed25519-sha256'] },
    bits: { type: 'integer' },
    state: { type: 'string', enum: ['pending', 'active', 'retiring', 'retired'] },
    dns: dnsRecord,
    published: { type: 'boolean' },
    createdAt: { type: 'string' },
    activatedAt: { type: 'string' },
    retireAt: { type: 'string' },
    retiredAt: { type: 'string' },
    checkedAt: { type: 'string' },
    warnings: { type: 'array', items: { type: 'string' } },
  },
} as const;

export const accountSchema = {
  type: 'object',
  properties: {
    address: { type: 'string' },
    domain: { type: 'string' },
    subject: { type: 'string' },
    issuer: { type: 'string' },
    serial: { type: 'string' },
    fingerprint: { type: 'string' },
    notBefore: { type: 'string' },
    notAfter: { type: 'string' },
    state: { type: 'string', enum: ['valid', 'expiring', 'expired', 'not-yet-valid'] },
    warning: { type: 'string' },
  },
} as const;

const dnsRecordStatus = {
  type: 'object',
  properties: {
    kind: { type: 'string', enum: ['spf', 'dkim', 'dmarc', 'return-path', 'ptr'] },
    name: { type: 'string' },
    status: { type: 'string', enum: ['ok', 'missing', 'wrong', 'error'] },
    expected: { type: 'string' },
    found: { type: 'array', items: { type: 'string' } },
    detail: { type: 'string' },
    fix: { type: 'string' },
    selector: { type: 'string' },
    source: { type: 'string' },
  },
} as const;

export const dnsStatusSchema = {
  type: 'object',
  properties: {
    domain: { type: 'string' },
    checkedAt: { type: 'string' },
    status: { type: 'string', enum: ['ok', 'wrong', 'missing', 'error'] },
    records: { type: 'array', items: dnsRecordStatus },
  },
} as const;

export const maildomainSchema = {
  type: 'object',
  properties: {
    domain: { type: 'string' },
    defaultQueue: { type: ['string', 'null'] },
    returnPathDomain: { type: ['string', 'null'] },
    signingDomain: { type: ['string', 'null'] },
    canonicalization: { type: 'string' },
    createdAt: { type: 'string' },
    updatedAt: { type: 'string' },
    keys: { type: 'array', items: keySchema },
    accounts: { type: 'array', items: accountSchema },
    signing: {
      type: 'object',
      properties: {
        domain: { type: 'string' },
        selectors: { type: 'array', items: { type: 'string' } },
      },
    },
    warnings: { type: 'array', items: { type: 'string' } },
    dns: dnsStatusSchema,
  },
} as const;

export const complianceSchema = {
  type: 'object',
  properties: {
    domain: { type: 'string' },
    compliant: { type: 'boolean' },
    dnsCheckedAt: { type: 'string' },
    items: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          id: { type: 'string' },
          requirement: { type: 'string' },
          receivers: { type: 'array', items: { type: 'string' } },
          status: { type: 'string', enum: ['pass', 'warn', 'fail', 'unknown'] },
          detail: { type: 'string' },
          fix: { type: 'string' },
        },
      },
    },
  },
} as const;
