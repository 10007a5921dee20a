/**
 * Replies classified per second (`npm run bench:classify`): the real replies of
 * test/data/replies.tsv, classified over and over on one thread for a few seconds.
 *
 *   node dist/bench/classify.js [--seconds 5]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Classifier } from '../src/bounces/classifier.js';
import { parseReplyText } from '../src/bounces/reply-text.js';
import type { SmtpReply } from '../src/delivery/reply.js';

function replies(): SmtpReply[] {
  return readFileSync('test/data/replies.tsv', 'utf8')
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith('#'))
    .map((l) => parseReplyText(l.split('\t')[0]!.replace(/\\n/g, '\n'))!)
    .filter(Boolean);
}

function main(): void {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' } } });
  const ms = Number(values.seconds) * 1000;
  const all = replies();
  const classifier = new Classifier([
    { name: 'own-1', text: 'partner storage', category: 'quota-issues' },
    { name: 'own-2', enhanced: '5.7.1', text: 'our relay', category: 'bad-configuration' },
  ]);
  let n = 0;
  const started = performance.now();
  while (performance.now() - started < ms) {
    for (const r of all) classifier.classify(r);
    n += all.length;
  }
  const perSecond = Math.round(n / ((performance.now() - started) / 1000));
  console.log(`${all.length} distinct real replies, ${n} classifications: ${perSecond} per second`);
  console.log(JSON.stringify({ replies: all.length, classifications: n, perSecond }));
}

main();
