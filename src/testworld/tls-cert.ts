// A self-signed certificate for the test receivers' STARTTLS, generated once per process.
import { createSecureContext } from 'node:tls';
import type { SecureContext } from 'node:tls';
import { generate } from 'selfsigned';

// Test peers never verify it: long enough to outlast any test run or demo (days).
const VALIDITY_DAYS = 3650;

let cached: Promise<SecureContext> | undefined;

/** The shared TLS context of every test receiver (an EC P-256 key: quick to generate). */
export function testSecureContext(): Promise<SecureContext> {
  cached ??= makeContext().catch((err: unknown) => {
    cached = undefined;
    throw new Error('testworld: cannot generate the self-signed certificate', { cause: err });
  });
  return cached;
}

/** Generates the key pair and certificate. */
async function makeContext(): Promise<SecureContext> {
  const notAfterDate = new Date(Date.now() + VALIDITY_DAYS * 24 * 3600 * 1000);
  const pems = await generate([{ name: 'commonName', value: 'testworld.invalid' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notAfterDate,
  });
  return createSecureContext({ key: pems.private, cert: pems.cert });
}
