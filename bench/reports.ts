/**
 * The bounce listener under load (`npm run bench:reports`): C sessions send N DSNs, each to
 * its own signed return path, to an engine in this process (spool.sync full). Every 250 means
 * the report was analysed and its AsyncBounce record and the suppression are fsync'd, so
 * the figure is durable reports per second, end to end over SMTP.
 *
 *   node dist/bench/reports.js [--reports 5000] [--sessions 10]
 */
import { parseArgs } from 'node:util';
import { ReturnPaths } from '../src/bounces/return-path.js';
import { RFC5321_TIMEOUTS, openSession } from '../src/delivery/smtp-client.js';
import { newMessageId, recipientId } from '../src/spool/ids.js';
import { startEngine } from '../test/support/harness.js';

const DOMAIN = 'bounces.engine.bench';

/** A Postfix-style DSN for one recipient, about 1.5 KB. */
function dsn(returnPath: string, recipient: string): Buffer {
  const text = [
    'From: MAILER-DAEMON@mx.rcpt.bench (Mail Delivery System)',
    `To: ${returnPath}`,
    'Subject: Undelivered Mail Returned to Sender',
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=delivery-status; boundary="R"',
    '',
    '--R',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'This is the mail system at host mx.rcpt.bench.',
    '',
    "I'm sorry to have to inform you that your message could not",
    'be delivered to one or more recipients.',
    '',
    `<${recipient}>: host store.rcpt.bench[192.0.2.9] said: 550 5.1.1`,
    `    <${recipient}>: Recipient address rejected: User unknown in virtual mailbox table`,
    '',
    '--R',
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; mx.rcpt.bench',
    'X-Postfix-Queue-ID: 4Q9Z1K2L3M',
    'Arrival-Date: Fri,  4 Dec 2026 12:00:00 +0000 (UTC)',
    '',
    `Final-Recipient: rfc822; ${recipient}`,
    `Original-Recipient: rfc822;${recipient}`,
    'Action: failed',
    'Status: 5.1.1',
    'Remote-MTA: dns; store.rcpt.bench',
    `Diagnostic-Code: smtp; 550 5.1.1 <${recipient}>: Recipient address rejected: User`,
    '    unknown in virtual mailbox table',
    '',
    '--R',
    'Content-Type: text/rfc822-headers',
    '',
    `Return-Path: <${returnPath}>`,
    'From: <news@sender.bench>',
    `To: <${recipient}>`,
    'Subject: Our news',
    'Message-ID: <bench@sender.bench>',
    '',
    '--R--',
    '',
  ].join('\r\n');
  return Buffer.from(text);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      reports: { type: 'string', default: '5000' },
      sessions: { type: 'string', default: '10' },
    },
  });
  const total = Number(values.reports);
  const sessions = Number(values.sessions);
  const t = await startEngine(null, {
    bounces: { domain: DOMAIN, listen: '127.0.0.1:0' },
    spool: { sync: 'full' },
  });
  try {
    const paths = new ReturnPaths(t.dataDir, DOMAIN);
    const port = t.engine.listening.bounces!.port;
    const jobs = Array.from({ length: total }, (_, i) => {
      const rcpt = `user${i}@rcpt.bench`;
      return { rcpt, returnPath: paths.forRecipient(recipientId(newMessageId(), 1)) };
    });
    let next = 0;
    let refused = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: sessions }, async () => {
        const opened = await openSession({
          ip: '127.0.0.1',
          port,
          mxHost: 'localhost',
          helo: 'mx.rcpt.bench',
          tls: 'disabled',
          timeouts: RFC5321_TIMEOUTS,
        });
        if (!opened.ok) throw new Error(`cannot connect: ${opened.reply.text}`);
        while (next < jobs.length) {
          const job = jobs[next++]!;
          const data = dsn(job.returnPath, job.rcpt);
          const res = await opened.session.send({ from: '', recipients: [job.returnPath] }, data);
          if (res.data?.code !== 250) refused++;
        }
        await opened.session.close();
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const stored = t.engine.recorder.events({
      after: 0,
      limit: total + 10,
      types: ['AsyncBounce'],
    });
    const perSecond = Math.round(total / seconds);
    console.log(
      `${total} DSNs over ${sessions} sessions in ${seconds.toFixed(2)} s: ${perSecond} durable ` +
        `reports/s; ${stored.events.length} AsyncBounce records, ${refused} refused`,
    );
    console.log(JSON.stringify({ reports: total, sessions, seconds, perSecond, refused }));
  } finally {
    await t.stop();
  }
}

await main();
