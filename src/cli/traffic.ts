/**
 * The CLI's traffic commands: queues and ready queues, pauses of a queue, site or source,
 * response-rule actions, and retry, purge and move of waiting recipients. Each one is a call
 * to the engine's API (src/api/routes/traffic.ts and recipients.ts).
 */
import { Command, Option } from 'commander';
import { GridpostError } from '../errors/catalogue.js';
import { apiGet, apiSend, type ClientOptions } from './client.js';
import {
  formatActions,
  formatPauses,
  formatQueues,
  formatReadyQueues,
  type ActionDoc,
  type PauseDoc,
  type QueueDoc,
  type ReadyQueueDoc,
} from './format.js';

type Json = { json?: boolean };
type AddClientOptions = (cmd: Command) => Command;

const KIND_PATH = { queue: 'queues', site: 'sites', source: 'sources' } as const;
type Kind = keyof typeof KIND_PATH;

/** Registers queues, ready-queues, pause, resume, pauses and actions. */
export function trafficCommands(program: Command, client: AddClientOptions): void {
  queueCommands(program, client);
  client(program.command('ready-queues').description('ready queues with state, reason, limits'))
    .option('--limit <n>', 'how many (blocked first, then the busiest)', '50')
    .option('--json', 'print the JSON document')
    .action(async (o: ClientOptions & Json & { limit: string }) => {
      const doc = (await apiGet(o, `/api/v1/ready-queues?limit=${o.limit}`)) as {
        readyQueues: ReadyQueueDoc[];
      };
      print(o, doc, () => formatReadyQueues(doc.readyQueues));
    });
  for (const verb of ['pause', 'resume'] as const) {
    client(program.command(`${verb} <kind> <name>`).description(`${verb} a queue, site or source`))
      .addHelpText('after', '\nkind: queue, site or source; a site name is its MX hosts.')
      .action((kind: string, name: string, o: ClientOptions) => pauseOrResume(o, verb, kind, name));
  }
  client(program.command('pauses').description('every pause in force'))
    .option('--json', 'print the JSON document')
    .action(async (o: ClientOptions & Json) => {
      const doc = (await apiGet(o, '/api/v1/pauses')) as { pauses: PauseDoc[] };
      print(o, doc, () => formatPauses(doc.pauses));
    });
  actionCommands(program, client);
}

function queueCommands(program: Command, client: AddClientOptions): void {
  const queues = program.command('queues').description('queues: list, pause, resume');
  client(queues.command('list', { isDefault: true }).description('queues with size and state'))
    .option('--json', 'print the JSON document')
    .action(async (o: ClientOptions & Json) => {
      const doc = (await apiGet(o, '/api/v1/queues')) as { queues: QueueDoc[] };
      print(o, doc, () => formatQueues(doc.queues));
    });
  for (const verb of ['pause', 'resume'] as const) {
    client(queues.command(`${verb} <name>`).description(`${verb} a queue`)).action(
      (name: string, o: ClientOptions) => pauseOrResume(o, verb, 'queue', name),
    );
  }
}

function actionCommands(program: Command, client: AddClientOptions): void {
  const actions = program.command('actions').description('response-rule actions: list, lift');
  client(actions.command('list', { isDefault: true }).description('actions in force'))
    .option('--json', 'print the JSON document')
    .action(async (o: ClientOptions & Json) => {
      const doc = (await apiGet(o, '/api/v1/actions')) as { actions: ActionDoc[] };
      print(o, doc, () => formatActions(doc.actions));
    });
  client(actions.command('lift <id>').description('end an action before its time')).action(
    async (id: string, o: ClientOptions) => {
      const a = (await apiSend(o, 'DELETE', `/api/v1/actions/${encodeURIComponent(id)}`)) as {
        kind: string;
        source: string;
        site: string;
      };
      console.log(`lifted ${a.kind} of source ${a.source} at site ${a.site}`);
    },
  );
}

async function pauseOrResume(
  o: ClientOptions,
  verb: 'pause' | 'resume',
  kind: string,
  name: string,
) {
  if (!(kind in KIND_PATH)) {
    throw new GridpostError('E_VALIDATION', `unknown kind "${kind}": give queue, site or source`, {
      path: 'kind',
    });
  }
  const path = `/api/v1/${KIND_PATH[kind as Kind]}/${encodeURIComponent(name)}/${verb}`;
  const doc = (await apiSend(o, 'POST', path)) as { since?: string; resumed?: boolean };
  if (verb === 'pause') console.log(`paused ${kind} ${name} (since ${doc.since})`);
  else console.log(doc.resumed ? `resumed ${kind} ${name}` : `${kind} ${name} was not paused`);
}

interface SelectionFlags extends ClientOptions {
  queue?: string;
  domain?: string;
  site?: string;
  message?: string;
  recipient?: string;
  all?: boolean;
  toQueue?: string;
  toPool?: string;
}

/** Registers retry, purge and move. */
export function recipientCommands(program: Command, client: AddClientOptions): void {
  const selecting = (cmd: Command) =>
    client(cmd)
      .option('--queue <queue>', 'recipients of this queue')
      .option('--domain <domain>', 'recipients at this domain')
      .option('--site <site>', 'recipients at this site (as ready-queues shows it)')
      .option('--message <id>', 'recipients of this message')
      .option('--recipient <id>', 'this recipient (<message id>.<n>)');
  selecting(program.command('retry').description('make waiting recipients due now')).action(
    async (o: SelectionFlags) => {
      const { count } = await post(o, 'retry', selection(o));
      console.log(`${count} recipient(s) due now`);
    },
  );
  selecting(program.command('purge').description('end recipients (AdminAction record each)'))
    .addOption(new Option('--all', 'with no selection: every waiting recipient'))
    .action(async (o: SelectionFlags) => {
      const { count } = await post(o, 'purge', { ...selection(o), all: o.all });
      console.log(`purged ${count} recipient(s)`);
    });
  selecting(program.command('move').description('move recipients to another queue or pool'))
    .option('--to-queue <queue>', 'the queue they go to')
    .option('--to-pool <pool>', 'the pool they leave from')
    .addOption(new Option('--all', 'with no selection: every waiting recipient'))
    .action(async (o: SelectionFlags) => {
      const to = { queue: o.toQueue, pool: o.toPool };
      const { count } = await post(o, 'move', { ...selection(o), all: o.all, to });
      const where = [to.queue && `queue ${to.queue}`, to.pool && `pool ${to.pool}`];
      console.log(`moved ${count} recipient(s) to ${where.filter(Boolean).join(', ')}`);
    });
}

function selection(o: SelectionFlags) {
  return {
    queue: o.queue,
    domain: o.domain,
    site: o.site,
    messageId: o.message,
    recipientId: o.recipient,
  };
}

async function post(o: ClientOptions, what: string, body: object): Promise<{ count: number }> {
  return (await apiSend(o, 'POST', `/api/v1/recipients/${what}`, body)) as { count: number };
}

function print(o: Json, doc: unknown, text: () => string): void {
  console.log(o.json ? JSON.stringify(doc, null, 2) : text());
}
