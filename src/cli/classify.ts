/** `gridpost classify "<reply>"`: the bounce category, class and rule of a reply. */
import type { Command } from 'commander';
import { apiSend, type ClientOptions } from './client.js';

interface ClassifyDoc {
  reply: { code: number; enhanced: string | null; text: string };
  category: string;
  class: string;
  rule: string;
}

/** Registers the classify command. */
export function classifyCommand(program: Command, client: (cmd: Command) => Command): void {
  client(
    program
      .command('classify <reply>')
      .description('bounce category and class of a reply, e.g. "550 5.1.1 User unknown"'),
  )
    .option('--json', 'print the JSON document')
    .action(async (reply: string, o: ClientOptions & { json?: boolean }) => {
      const doc = (await apiSend(o, 'POST', '/api/v1/classify', { reply })) as ClassifyDoc;
      if (o.json) return console.log(JSON.stringify(doc, null, 2));
      console.log(`${doc.category} ${doc.class} (rule ${doc.rule})`);
    });
}
