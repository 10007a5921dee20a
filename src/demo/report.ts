/**
 * The demo's closing report: one row per provider (injected, delivered, deferred, bounced,
 * expired, delivered over TLS), the top reasons behind what was not delivered at once, an
 * example trace, and where to look next.
 */
import type { InjectCounts } from './inject.js';
import type { DomainTally } from './tally.js';

/** One provider's line of the summary. */
export interface ProviderSummary extends DomainTally {
  behaviour: string;
}

/** One recipient's history, as `gridpost trace` prints it. */
export interface TraceExample {
  address: string;
  trace: string;
}

/** Everything the report shows. */
export interface ReportInput {
  providers: ProviderSummary[];
  injected: InjectCounts;
  smtpSessions: number;
  elapsedMs: number;
  /** Recipients still queued when the run ended (0 unless the time limit cut it short). */
  waiting: number;
  timedOut: boolean;
  example?: TraceExample;
  /** The data directory, when it is kept after the run. */
  keptDataDir?: string;
}

// Reasons listed per provider: enough for the demo's behaviours, short enough to read.
const REASONS_PER_PROVIDER = 3;
const COLUMNS = [
  'provider',
  'behaviour',
  'injected',
  'delivered',
  'deferred',
  'bounced',
  'expired',
  'tls',
];

/** The report as lines. */
export function formatReport(r: ReportInput): string[] {
  return [
    '',
    ...headline(r),
    '',
    ...providerTable(r.providers),
    '',
    ...reasons(r.providers),
    ...ruleLines(r.providers),
    ...exampleTrace(r.example),
    '',
    ...nextSteps(r),
  ];
}

function headline(r: ReportInput): string[] {
  const i = r.injected;
  const seconds = (r.elapsedMs / 1000).toFixed(1);
  const how =
    `${i.viaSmtp} over SMTP in ${plural(r.smtpSessions, 'session')}, ` +
    `${i.viaHttp} over HTTP in ${plural(i.httpRequests, 'request')}`;
  const lines = [`Summary after ${seconds} s: ${i.accepted} messages injected (${how})`];
  if (i.refused > 0) lines.push(`${i.refused} refused at intake; first: ${i.firstRefusal}`);
  if (r.timedOut) lines.push(`Time limit reached with ${r.waiting} recipients still queued.`);
  return lines;
}

/** The per-provider table with a total row; "tls" counts deliveries over STARTTLS. */
function providerTable(providers: ProviderSummary[]): string[] {
  const numbers = (p: ProviderSummary) => [
    p.received,
    p.delivered,
    p.deferred,
    p.bounced,
    p.expired,
    p.deliveredTls,
  ];
  const rows = providers.map((p) => [p.domain, p.behaviour, ...numbers(p).map(String)]);
  const totals: number[] = [];
  for (const p of providers) numbers(p).forEach((n, c) => (totals[c] = (totals[c] ?? 0) + n));
  rows.push(['total', '', ...totals.map(String)]);
  return alignColumns([COLUMNS, ...rows], [false, false, true, true, true, true, true, true]);
}

/** The most frequent replies behind deferrals, bounces and expirations, per provider. */
function reasons(providers: ProviderSummary[]): string[] {
  const rows = providers.flatMap((p) =>
    p.reasons
      .slice(0, REASONS_PER_PROVIDER)
      .map((r) => [p.domain, REASON_WORD[r.type], String(r.count), r.reply]),
  );
  if (rows.length === 0) return ['Every recipient was delivered at the first attempt.'];
  const header = 'Top reasons (a recipient deferred twice counts twice):';
  return [header, ...alignColumns(rows, [false, false, true, false]).map((l) => `  ${l}`)];
}

const REASON_WORD = { TransientFailure: 'deferred', Bounce: 'bounced', Expiration: 'expired' };

/** The response rules that acted, per provider: traffic shaping reacting to the replies. */
function ruleLines(providers: ProviderSummary[]): string[] {
  const rows = providers.flatMap((p) =>
    p.rules.map((r) => [p.domain, r.action, r.name, `${r.count} replies matched`]),
  );
  if (rows.length === 0) return [];
  const lines = alignColumns(rows, [false, false, false, false]).map((l) => `  ${l}`);
  const how = '(`gridpost ready-queues` shows the limits in force, `gridpost actions` the cause)';
  return ['', `Response rules that acted ${how}:`, ...lines];
}

function exampleTrace(example: TraceExample | undefined): string[] {
  if (!example) return [];
  return [
    '',
    `One greylisted recipient, as \`gridpost trace ${example.address}\` shows it:`,
    ...example.trace.split('\n').map((l) => `  ${l}`),
  ];
}

function nextSteps(r: ReportInput): string[] {
  const records = r.keptDataDir
    ? `  accounting records, one JSON object per line: ${r.keptDataDir}/records/`
    : '  npm run demo -- --keep     keeps the data directory and its accounting records';
  return [
    'Where to look next:',
    "  gridpost trace <address>   any recipient's history, while its engine runs (the command",
    '                             for this run was printed at the start)',
    '  gridpost status            what an engine treated, and its queue sizes',
    records,
    '  npm run demo -- --messages 20000   a bigger run',
  ];
}

/** Pads cells into columns two spaces apart; right-aligned where `right` says so. */
function alignColumns(rows: string[][], right: boolean[]): string[] {
  const widths: number[] = [];
  for (const row of rows)
    row.forEach((cell, c) => (widths[c] = Math.max(widths[c] ?? 0, cell.length)));
  const pad = (cell: string, c: number) =>
    right[c] ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!);
  return rows.map((row) => row.map(pad).join('  ').trimEnd());
}

/** "1 request", "6 requests". */
function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
