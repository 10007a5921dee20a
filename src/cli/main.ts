#!/usr/bin/env node
/**
 * gridpost: the command line. `serve` runs an engine; the other commands talk to a running
 * engine's HTTP API (its address from --api, its key from --key, GRIDPOST_API_KEY or the data
 * directory's api-key file).
 */
import { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { Engine } from '../engine/engine.js';
import { GridpostError } from '../errors/catalogue.js';
import { ApiError, apiGet, type ClientOptions } from './client.js';
import { formatStatus, formatTrace } from './format.js';
import { bounceCommands } from './bounce.js';
import { classifyCommand } from './classify.js';
import { suppressCommands } from './suppress.js';
import { maildomainCommands } from './maildomains.js';
import { policyCommands } from './policy.js';
import { recipientCommands, trafficCommands } from './traffic.js';

const program = new Command('gridpost').description('Gridpost outbound MTA');

program
  .command('serve')
  .description('run an engine (direct role)')
  .option('--config <file>', 'YAML or JSON configuration file')
  .option('--data <dir>', 'data directory (default ./data)')
  .option('--smtp <host:port>', 'SMTP intake address (default 127.0.0.1:2525)')
  .option('--http <host:port>', 'HTTP API address (default 127.0.0.1:8025)')
  .action(serve);

const clientOptions = (cmd: Command): Command =>
  cmd
    .option('--api <host:port>', 'engine API address', '127.0.0.1:8025')
    .option('--key <key>', 'API key (default: GRIDPOST_API_KEY or <data>/api-key)')
    .option('--data <dir>', 'data directory holding api-key', './data');

clientOptions(program.command('status').description('what the engine treated, queue sizes'))
  .option('--json', 'print the JSON document')
  .action(async (o: ClientOptions & { json?: boolean }) => {
    const doc = await apiGet(o, '/api/v1/status');
    console.log(o.json ? JSON.stringify(doc, null, 2) : formatStatus(doc as never));
  });

clientOptions(
  program.command('trace <query>').description('history of a message id, recipient id or address'),
)
  .option('--json', 'print the JSON document')
  .action(async (query: string, o: ClientOptions & { json?: boolean }) => {
    const doc = await apiGet(o, `/api/v1/trace?q=${encodeURIComponent(query)}`);
    console.log(o.json ? JSON.stringify(doc, null, 2) : formatTrace(doc as never));
  });

trafficCommands(program, clientOptions);
recipientCommands(program, clientOptions);
policyCommands(program, clientOptions);
classifyCommand(program, clientOptions);
suppressCommands(program, clientOptions);
maildomainCommands(program, clientOptions);
bounceCommands(program);

// A bad policy in the configuration stops start-up like any other configuration error (78);
// from `policy apply` it is an ordinary failure (1).
let policyExitCode = 1;

async function serve(o: { config?: string; data?: string; smtp?: string; http?: string }) {
  policyExitCode = 78;
  const config = loadConfig(o.config, {
    dataDir: o.data,
    smtpListen: o.smtp,
    httpListen: o.http,
    dnsEnv: process.env.GRIDPOST_DNS,
  });
  const engine = await Engine.start(config);
  const { smtp, http } = engine.listening;
  console.log(
    `gridpost engine: SMTP on ${smtp.host}:${smtp.port}, HTTP API on http://${http.host}:${http.port}`,
  );
  console.log(
    `data in ${config.dataDir}; API key in ${engine.apiKeyFile ?? 'http.apiKeys (config)'}`,
  );
  const stop = (signal: string) => {
    engine.log.info({ signal }, 'stopping');
    void engine.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}

program.parseAsync().catch((err: unknown) => {
  if (err instanceof GridpostError || err instanceof ApiError) {
    const fix = err.fix ? `\n  fix: ${err.fix}` : '';
    console.error(`gridpost: ${err.code}: ${err.message}${fix}`);
  } else {
    console.error(`gridpost: ${err instanceof Error ? err.message : String(err)}`);
  }
  process.exit(exitCode(err));
});

/** 78 (EX_CONFIG) for configuration errors at start-up, 1 for anything else. */
function exitCode(err: unknown): number {
  if (!(err instanceof GridpostError)) return 1;
  if (err.code.startsWith('E_CONFIG')) return 78;
  return err.code === 'E_POLICY_INVALID' ? policyExitCode : 1;
}
