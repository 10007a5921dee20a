// Bounce classification over real replies of real receivers (test/data/replies.tsv, with the
// source of each), and the order in which the rules decide.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Classifier } from '../src/bounces/classifier.js';
import { parseReplyText } from '../src/bounces/reply-text.js';
import { TestWorld } from '../src/testworld/index.js';
import {
  api,
  injectSmtp,
  simpleMessage,
  startEngine,
  waitForRecord,
  type TestEngine,
} from './support/harness.js';

interface Case {
  line: number;
  reply: string;
  category: string;
  cls: string;
  source: string;
}

function cases(): Case[] {
  const out: Case[] = [];
  readFileSync('test/data/replies.tsv', 'utf8')
    .split('\n')
    .forEach((text, i) => {
      if (!text.trim() || text.startsWith('#')) return;
      const [reply, category, cls, source] = text.split('\t');
      out.push({
        line: i + 1,
        reply: reply!.replace(/\\n/g, '\n'),
        category: category!,
        cls: cls!,
        source: source!,
      });
    });
  return out;
}

describe('bounce classification of real replies (test/data/replies.tsv)', () => {
  const classifier = new Classifier();
  const all = cases();

  it('has a large table from several providers and programs', () => {
    assert.ok(all.length >= 80, `${all.length} replies`);
    assert.ok(new Set(all.map((c) => c.source.split(' ')[0])).size >= 8);
  });

  for (const c of all) {
    it(`line ${c.line} (${c.source}): ${c.category}/${c.cls}`, () => {
      const reply = parseReplyText(c.reply);
      assert.ok(reply, `parses: ${c.reply}`);
      const got = classifier.classify(reply);
      assert.deepEqual([got.category, got.class], [c.category, c.cls], `${c.reply} -> ${got.rule}`);
    });
  }
});

describe('classification rules', () => {
  it('lets the installation rules decide first', () => {
    const c = new Classifier([
      { name: 'our-relay', text: 'relay access denied', category: 'bad-configuration' },
    ]);
    const got = c.classify(parseReplyText('554 5.7.1 <a@b.example>: Relay access denied')!);
    assert.deepEqual(got, {
      category: 'bad-configuration',
      class: 'soft',
      rule: 'installation:our-relay',
    });
  });

  it('reads an enhanced code written later in the text', () => {
    const got = new Classifier().classify(
      parseReplyText('550 Requested action not taken (#5.1.1)')!,
    );
    assert.equal(got.category, 'bad-mailbox');
    assert.equal(got.rule, 'builtin:enhanced *.1.1');
  });

  it('says undetermined, by the code, when nothing matches', () => {
    const got = new Classifier().classify(parseReplyText('550 zzz')!);
    assert.deepEqual(got, { category: 'other', class: 'undetermined', rule: 'code:550' });
  });

  it('parses replies as DSNs and logs quote them', () => {
    const r = parseReplyText('smtp; 550-5.1.1 first line\n550 5.1.1 second line');
    assert.deepEqual(r, { code: 550, enhanced: '5.1.1', text: 'first line\nsecond line' });
    assert.equal(parseReplyText('hello'), null);
  });
});

describe('classification in an engine', () => {
  let world: TestWorld;
  let t: TestEngine;

  before(async () => {
    world = await TestWorld.start();
    await world.addProvider(['classify.test'], {
      script: { onRcptTo: () => '550 5.1.1 <x>: Recipient address rejected: User unknown' },
    });
    t = await startEngine(world, {
      policy: {
        bounceRules: {
          'partner-quota': { text: 'partner storage', category: 'quota-issues' },
        },
      },
    });
  });
  after(async () => {
    await t?.stop();
    await world?.stop();
  });

  it('puts the category, class and rule in the Bounce record', async () => {
    const to = 'gone@classify.test';
    await injectSmtp(t.smtpPort, 'a@sender.test', [to], simpleMessage('a@sender.test', to));
    const b = await waitForRecord(t, to, 'Bounce');
    assert.deepEqual(b.bounce, {
      category: 'bad-mailbox',
      class: 'hard',
      rule: 'builtin:enhanced *.1.1',
    });
  });

  it('answers POST /api/v1/classify with the installation rules first', async () => {
    const own = await api(t, 'POST', '/api/v1/classify', { reply: '552 partner storage is full' });
    assert.equal(own.status, 200);
    assert.deepEqual(
      [own.body.category, own.body.class, own.body.rule],
      ['quota-issues', 'soft', 'installation:partner-quota'],
    );
    const bad = await api(t, 'POST', '/api/v1/classify', { reply: 'not a reply' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'E_VALIDATION');
    assert.equal(bad.body.error.path, 'reply');
  });

  it('refuses a bounce rule with an unknown category, naming its path', async () => {
    const res = await api(t, 'PUT', '/api/v1/policy/bounceRules/x', {
      text: 'y',
      category: 'oops',
    });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'E_POLICY_INVALID');
    assert.match(res.body.error.message, /bounceRules\.x\.category/);
  });
});
