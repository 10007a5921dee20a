/**
 * The intake's TLS certificate: the configured one, or a self-signed one made on first start
 * and kept in <dataDir>/tls (the private key with mode 0600), so STARTTLS works out of the box.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import { GridpostError } from '../errors/catalogue.js';

export interface TlsMaterial {
  key: string;
  cert: string;
  selfSigned: boolean;
}

/** Loads the configured key pair, or the stored self-signed one, making it when missing. */
export async function loadTls(
  configured: { cert: string; key: string } | undefined,
  dataDir: string,
  hostname: string,
): Promise<TlsMaterial> {
  if (configured) return readConfigured(configured);
  const dir = join(dataDir, 'tls');
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  if (existsSync(keyFile) && existsSync(certFile)) {
    return {
      key: readFileSync(keyFile, 'utf8'),
      cert: readFileSync(certFile, 'utf8'),
      selfSigned: true,
    };
  }
  // Ten years: a stand-in certificate should not expire under a running installation.
  const notAfterDate = new Date(Date.now() + 10 * 365 * 86_400_000);
  const pems = await generate([{ name: 'commonName', value: hostname }], {
    keySize: 2048,
    notAfterDate,
  });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(keyFile, pems.private, { mode: 0o600 });
  writeFileSync(certFile, pems.cert);
  return { key: pems.private, cert: pems.cert, selfSigned: true };
}

function readConfigured(c: { cert: string; key: string }): TlsMaterial {
  try {
    return {
      key: readFileSync(c.key, 'utf8'),
      cert: readFileSync(c.cert, 'utf8'),
      selfSigned: false,
    };
  } catch (err) {
    throw new GridpostError('E_CONFIG_INVALID', `smtp.tls: cannot read ${c.cert} or ${c.key}`, {
      path: 'smtp.tls',
      cause: err,
    });
  }
}
