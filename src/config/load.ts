/** Loads the start-up configuration from a YAML/JSON file, flags and the environment. */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { GridpostError } from '../errors/catalogue.js';
import { validatePolicy } from '../shaping/policy-service.js';
import { configSchema, type Config, type ConfigInput } from './schema.js';

/** Overrides from the command line; they win over the file. */
export interface ConfigOverrides {
  dataDir?: string;
  smtpListen?: string;
  httpListen?: string;
  /** The value of GRIDPOST_DNS, if set. */
  dnsEnv?: string;
}

/** Reads and parses a config file; errors name the file and what is wrong. */
export function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new GridpostError('E_CONFIG_FILE', `cannot read config file ${file}`, { cause: err });
  }
  try {
    return file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new GridpostError('E_CONFIG_FILE', `config file ${file} is not valid YAML/JSON: ${why}`);
  }
}

/** Keys of earlier releases that now live in the traffic policy, with where they went. */
const MOVED: [string[], string][] = [
  [['queues'], 'policy.queues'],
  [['delivery', 'maxConnectionsPerDestination'], 'policy.shaping.<rule>.maxConnections'],
  [
    ['delivery', 'maxRecipientsPerTransaction'],
    'policy.shaping.<rule>.maxRecipientsPerTransaction',
  ],
  [['delivery', 'maxMessagesPerConnection'], 'policy.shaping.<rule>.maxMessagesPerConnection'],
  [['delivery', 'idleTimeout'], 'policy.shaping.<rule>.idleTimeout'],
  [['delivery', 'tls'], 'policy.shaping.<rule>.tls'],
  [['delivery', 'ports'], 'policy.shaping.<rule>.port with domain: <domain>'],
];

/** Refuses keys that moved to the policy, saying where each went. */
function refuseMovedKeys(raw: unknown, source: string): void {
  const found = MOVED.filter(([path]) => {
    let v: unknown = raw;
    for (const k of path)
      v = v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
    return v !== undefined;
  });
  if (found.length === 0) return;
  const lines = found.map(([p, to]) => `  ${p.join('.')}: moved to ${to} (docs/policy.md)`);
  throw new GridpostError('E_CONFIG_INVALID', `${source} is invalid:\n${lines.join('\n')}`, {
    path: found[0]![0].join('.'),
  });
}

/** Validates raw configuration; the error names every bad key with its path and what is allowed. */
export function validateConfig(raw: unknown, source = 'configuration'): Config {
  refuseMovedKeys(raw, source);
  const result = configSchema.safeParse(raw ?? {});
  if (!result.success) {
    const first = result.error.issues[0];
    const lines = result.error.issues.map((i) => `  ${i.path.join('.') || '(top)'}: ${i.message}`);
    throw new GridpostError('E_CONFIG_INVALID', `${source} is invalid:\n${lines.join('\n')}`, {
      path: first?.path.join('.'),
    });
  }
  const config = result.data;
  if (config.policy !== undefined) {
    // Checked here so that a bad policy stops start-up with the config file's name; the error
    // paths start at "policy.".
    try {
      validatePolicy(config.policy);
    } catch (err) {
      const e = err as GridpostError;
      const path = e.path ? `policy.${e.path}` : 'policy';
      const msg = e.message.replace(/^policy is invalid:\n/, '').replace(/^ {2}/gm, '  policy.');
      throw new GridpostError('E_CONFIG_INVALID', `${source} is invalid:\n${msg}`, { path });
    }
  }
  return config;
}

/** Merges overrides into raw configuration before validation. */
function applyOverrides(raw: ConfigInput, o: ConfigOverrides): ConfigInput {
  const out: ConfigInput = { ...raw };
  if (o.dataDir) out.dataDir = o.dataDir;
  if (o.smtpListen) out.smtp = { ...out.smtp, listen: o.smtpListen };
  if (o.httpListen) out.http = { ...out.http, listen: o.httpListen };
  if (o.dnsEnv) out.dns = { ...out.dns, servers: parseDnsEnv(o.dnsEnv) };
  return out;
}

/** GRIDPOST_DNS: HOST:PORT[,HOST:PORT...] (IPv6 as [::1]:53). */
export function parseDnsEnv(value: string): string[] {
  const servers = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const ok = z.array(z.string().regex(/^(\[[0-9a-fA-F:]+\]|[0-9.]+):\d{1,5}$/)).min(1);
  if (!ok.safeParse(servers).success) {
    throw new GridpostError('E_CONFIG_DNS', `GRIDPOST_DNS="${value}" is not HOST:PORT[,HOST:PORT]`);
  }
  return servers;
}

/** The whole start-up path: file (optional), then overrides, then validation. */
export function loadConfig(file: string | undefined, overrides: ConfigOverrides = {}): Config {
  const raw = file ? readConfigFile(file) : {};
  if (raw !== null && (typeof raw !== 'object' || Array.isArray(raw))) {
    throw new GridpostError('E_CONFIG_INVALID', `${file}: the top level must be a mapping`);
  }
  return validateConfig(applyOverrides((raw ?? {}) as ConfigInput, overrides), file);
}
