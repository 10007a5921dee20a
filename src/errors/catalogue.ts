/**
 * The catalogue of stable error codes that the API, the CLI and start-up print. Codes never
 * change meaning once published; docs/errors.md lists the same set (a test keeps them equal).
 */
export const ERROR_CODES = {
  E_CONFIG_FILE: {
    status: 0,
    fix: 'Check the path given to --config and that the file is readable.',
  },
  E_CONFIG_INVALID: {
    status: 0,
    fix: 'Correct the key named in the message; see docs/configuration.md.',
  },
  E_CONFIG_DNS: {
    status: 0,
    fix: 'Set GRIDPOST_DNS to HOST:PORT[,HOST:PORT...], e.g. 127.0.0.1:53.',
  },
  E_LISTEN: { status: 0, fix: 'Free the address or choose another with --smtp / --http.' },
  E_AUTH_REQUIRED: { status: 401, fix: 'Send the API key as "Authorization: Bearer KEY".' },
  E_AUTH_INVALID: {
    status: 401,
    fix: 'Use a key from the api.keys setting or the data directory.',
  },
  E_BAD_JSON: { status: 400, fix: 'Send a valid JSON body with Content-Type: application/json.' },
  E_VALIDATION: {
    status: 400,
    fix: 'Correct the field named in "path"; see the OpenAPI document.',
  },
  E_BAD_YAML: {
    status: 400,
    fix: 'Send valid YAML with Content-Type: application/yaml (check indentation and quotes).',
  },
  E_BAD_ADDRESS: { status: 400, fix: 'Use a mailbox like user@example.com (RFC 5321 syntax).' },
  E_TOO_MANY_RECIPIENTS: {
    status: 400,
    fix: 'Split the message; the limit is smtp.maxRecipients.',
  },
  E_MESSAGE_TOO_LARGE: {
    status: 413,
    fix: 'Send a smaller message; the limit is smtp.maxMessageSize.',
  },
  E_BAD_MESSAGE: {
    status: 400,
    fix: 'Send RFC 5322 content: header fields, a blank line, a body.',
  },
  E_CERT_INVALID: {
    status: 400,
    fix: 'Give the certificate, its chain and its private key as PEM, or a PKCS#12 file and its password.',
  },
  E_CERT_KEY_MISMATCH: {
    status: 400,
    fix: 'Give the private key the certificate was issued for (the one its request was made with).',
  },
  E_CERT_UNSUPPORTED: {
    status: 400,
    fix: 'Use a certificate with an RSA key of 2048 bits or more, or an ECDSA key on P-256, P-384 or P-521; Ed25519 and RSA-PSS keys cannot sign here.',
  },
  E_CERT_PURPOSE: {
    status: 400,
    fix: 'Use an S/MIME certificate: extended key usage emailProtection, key usage digitalSignature.',
  },
  E_CERT_ADDRESS_MISMATCH: {
    status: 422,
    fix: 'Send from an address the certificate lists, or import a certificate issued for this address.',
  },
  E_CERT_EXPIRED: {
    status: 422,
    fix: 'Renew the certificate with its issuer and import the new one.',
  },
  E_CERT_NOT_YET_VALID: {
    status: 422,
    fix: "Wait until the certificate's notBefore date, or check this server's clock.",
  },
  E_UNKNOWN_QUEUE: { status: 400, fix: 'Use a queue defined under "queues" in the policy.' },
  E_UNKNOWN_POOL: { status: 400, fix: 'Use a pool defined under "pools" in the policy.' },
  E_POLICY_INVALID: {
    status: 400,
    fix: 'Correct the key named in "path"; docs/policy.md lists every key and its values.',
  },
  E_POLICY_FILE: {
    status: 0,
    fix: 'Give a readable YAML or JSON file: gridpost policy apply FILE.',
  },
  E_INPUT_FILE: {
    status: 0,
    fix: 'Give a readable file, or - to read standard input.',
  },
  E_SUPPRESSED: {
    status: 422,
    fix: 'Every recipient is on the suppression list; remove an address from it only if it may receive mail again.',
  },
  E_KEY_EXISTS: {
    status: 409,
    fix: 'Choose another selector, or delete the pending or retired key of that name first.',
  },
  E_KEY_STATE: {
    status: 409,
    fix: 'Check the key state (gridpost keys list DOMAIN): activate pending keys, retire active ones.',
  },
  E_KEY_NOT_PUBLISHED: {
    status: 409,
    fix: 'Publish the TXT record the key shows, wait for DNS, then check it again (or --force).',
  },
  E_DNS_LOOKUP: {
    status: 503,
    fix: 'DNS did not answer (SERVFAIL, timeout): check the resolver (GRIDPOST_DNS, dns.servers) and try again.',
  },
  E_CHECK_STRUCTURE: {
    status: 422,
    fix: 'Send RFC 5322 content: well-formed header fields, one From, at most one Date, Subject and Message-ID.',
  },
  E_CHECK_FROM_DOMAIN: {
    status: 422,
    fix: 'Send from a configured maildomain (gridpost maildomains add) or list the domain in checks.allowedFromDomains.',
  },
  E_CHECK_ALIGNMENT: {
    status: 422,
    fix: 'Give the maildomain (or its signing domain) an active domain key so its mail is DKIM-signed in its own name.',
  },
  E_CHECK_LIST_UNSUBSCRIBE: {
    status: 422,
    fix: 'Add List-Unsubscribe and List-Unsubscribe-Post (RFC 8058), or let the engine add them (listUnsubscribe).',
  },
  E_SMIME_REFUSED: {
    status: 422,
    fix: "Renew or replace the certified account's certificate (gridpost accounts add), or remove the account.",
  },
  E_KEY_INVALID: {
    status: 400,
    fix: 'Give a PEM private key: PKCS#1 ("BEGIN RSA PRIVATE KEY") or PKCS#8 ("BEGIN PRIVATE KEY").',
  },
  E_KEY_ENCRYPTED: {
    status: 400,
    fix: 'Remove the passphrase first: openssl pkey -in KEY.pem -out PLAIN.pem.',
  },
  E_KEY_UNSUPPORTED: {
    status: 400,
    fix: 'Use an RSA key of 1024 to 4096 bits (2048 recommended) or an Ed25519 key.',
  },
  E_KEY_WEAK: {
    status: 400,
    fix: 'Use an RSA key of at least 1024 bits (RFC 8301); 2048 is recommended.',
  },
  E_NOT_FOUND: { status: 404, fix: 'Check the id; records are kept for records.retention.' },
  E_STORAGE: { status: 503, fix: 'The spool could not write (disk full?); retry later.' },
  E_SHUTTING_DOWN: { status: 503, fix: 'The engine is stopping; retry against a running engine.' },
  E_INTERNAL: { status: 500, fix: 'A bug: the diagnostics log has the details; please report it.' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** An error with a stable code, what went wrong, and where (a config key path or a field). */
export class GridpostError extends Error {
  readonly code: ErrorCode;
  readonly path?: string;

  constructor(code: ErrorCode, message: string, opts: { path?: string; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'GridpostError';
    this.code = code;
    this.path = opts.path;
  }

  /** HTTP status for the API (0 for errors that only stop start-up). */
  get status(): number {
    return ERROR_CODES[this.code].status || 500;
  }

  /** What the caller can do about it. */
  get fix(): string {
    return ERROR_CODES[this.code].fix;
  }

  /** The JSON body the API returns for this error. */
  toJSON(): { error: { code: ErrorCode; message: string; path?: string; fix: string } } {
    return { error: { code: this.code, message: this.message, path: this.path, fix: this.fix } };
  }
}
