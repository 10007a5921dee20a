/** The CLI's HTTP client for a running engine's API (address and key from flags or defaults). */
import { existsSync, readFileSync } from 'node:fs';
import { apiKeyFile } from '../engine/api-keys.js';

export interface ClientOptions {
  api: string;
  key?: string;
  data: string;
}

/** An error answer of the API, with its stable code and the fix the engine suggests. */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly fix: string | undefined,
    readonly path: string | undefined,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Calls the API with GET; throws an ApiError carrying the API's code and message. */
export function apiGet(opts: ClientOptions, path: string): Promise<unknown> {
  return apiSend(opts, 'GET', path);
}

/**
 * Calls the API; a body is sent as JSON, or as is with `contentType` (CSV, YAML). Answers
 * JSON as a value, other content (YAML, CSV) as text, and an empty answer (204) as null.
 */
export async function apiSend(
  opts: ClientOptions,
  method: string,
  path: string,
  body?: unknown,
  contentType = 'application/json',
): Promise<unknown> {
  const key = opts.key ?? process.env.GRIDPOST_API_KEY ?? readKeyFile(opts.data);
  const headers: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
  if (body !== undefined) headers['content-type'] = contentType;
  const raw = contentType === 'application/json' ? JSON.stringify(body) : String(body);
  let res: Response;
  try {
    res = await fetch(`${baseUrl(opts.api)}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : raw,
    });
  } catch (err) {
    throw new Error(`cannot reach the engine at ${opts.api}: is it running? (${String(err)})`);
  }
  const text = await res.text();
  const json = /json/.test(res.headers.get('content-type') ?? '');
  const value: unknown = json ? parseJson(text) : text || null;
  if (!res.ok) throw errorOf(res.status, value);
  return value;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function errorOf(status: number, value: unknown): Error {
  const e = (value as { error?: { code: string; message: string; fix?: string; path?: string } })
    ?.error;
  return e ? new ApiError(e.code, e.message, e.fix, e.path) : new Error(`HTTP ${status}`);
}

function baseUrl(api: string): string {
  return api.startsWith('http') ? api.replace(/\/$/, '') : `http://${api}`;
}

function readKeyFile(dataDir: string): string | undefined {
  const file = apiKeyFile(dataDir);
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
}
