/** The CLI's HTTP client for a running engine's API (address and key from flags or defaults). */
import { existsSync, readFileSync } from 'node:fs';
import { apiKeyFile } from '../engine/api-keys.js';

export interface ClientOptions {
  api: string;
  key?: string;
  data: string;
}

/** Calls the API; throws an Error carrying the API's code and message on failure. */
export async function apiGet(opts: ClientOptions, path: string): Promise<unknown> {
  const key = opts.key ?? process.env.GRIDPOST_API_KEY ?? readKeyFile(opts.data);
  let res: Response;
  try {
    res = await fetch(`${baseUrl(opts.api)}${path}`, {
      headers: key ? { authorization: `Bearer ${key}` } : {},
    });
  } catch (err) {
    throw new Error(`cannot reach the engine at ${opts.api}: is it running? (${String(err)})`);
  }
  const body = (await res.json().catch(() => null)) as {
    error?: { code: string; message: string };
  };
  if (!res.ok) {
    const e = body?.error;
    throw new Error(e ? `${e.code}: ${e.message}` : `HTTP ${res.status}`);
  }
  return body;
}

function baseUrl(api: string): string {
  return api.startsWith('http') ? api.replace(/\/$/, '') : `http://${api}`;
}

function readKeyFile(dataDir: string): string | undefined {
  const file = apiKeyFile(dataDir);
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
}
