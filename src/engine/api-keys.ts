/**
 * API keys: the configured ones, or one generated on first start and kept in
 * <dataDir>/api-key (mode 0600) so that `npm start` works with no configuration and the CLI
 * on the same machine finds it.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';

export interface ApiKey {
  name: string;
  key: string;
}

/** The key file of a data directory. */
export function apiKeyFile(dataDir: string): string {
  return join(dataDir, 'api-key');
}

/** The keys the API accepts; generates the local key file when none is configured. */
export function loadApiKeys(config: Config): { keys: ApiKey[]; generatedFile?: string } {
  if (config.http.apiKeys.length > 0) return { keys: config.http.apiKeys };
  const file = apiKeyFile(config.dataDir);
  if (!existsSync(file)) {
    writeFileSync(file, randomBytes(24).toString('base64url') + '\n', { mode: 0o600 });
  }
  return { keys: [{ name: 'local', key: readFileSync(file, 'utf8').trim() }], generatedFile: file };
}

/** The name of the key that matches `presented`, compared in constant time, or null. */
export function matchApiKey(keys: ApiKey[], presented: string): string | null {
  const p = Buffer.from(presented);
  for (const k of keys) {
    const b = Buffer.from(k.key);
    if (b.length === p.length && timingSafeEqual(b, p)) return k.name;
  }
  return null;
}
