/**
 * Reports that come back: a DSN, a non-standard bounce, a delay warning or a complaint is
 * analysed, tied to the recipient it is about by its signed return path, and stored as an
 * AsyncBounce or Complaint record before the listener says 250. Auto-replies and mail that is
 * not a report are counted and dropped; so is a report with no valid return path (forged, or
 * about mail we never sent), which therefore cannot suppress anybody.
 */
import type { Classifier } from '../bounces/classifier.js';
import { analyseMessage } from '../bounces/inbound/analyse.js';
import type { InboundAnalysis, ReportedRecipient } from '../bounces/inbound/types.js';
import type { ReturnPathClaim, ReturnPaths } from '../bounces/return-path.js';
import type { Recorder } from '../records/recorder.js';
import type {
  AsyncBounceRecord,
  ComplaintRecord,
  MatchedBy,
  ReceptionRecord,
  StoredRecord,
} from '../records/types.js';
import type { Committer } from '../spool/committer.js';

/** What became of one report. */
export interface ReportOutcome {
  analysis: InboundAnalysis;
  /** The records stored (none for auto-replies, non-reports and unmatched reports). */
  records: StoredRecord[];
  /** Why nothing was stored, when nothing was. */
  ignored?: 'auto-reply' | 'not-a-report' | 'no-return-path' | 'no-recipient' | 'duplicate';
}

// A quoted return path is looked for in this much of a report at most (originals come first).
const SEARCH_BYTES = 256 * 1024;

/** Turns inbound reports into records. */
export class Reports {
  constructor(
    private readonly recorder: Recorder,
    private readonly committer: Committer,
    private readonly returnPaths: ReturnPaths,
    private readonly classifier: () => Classifier,
  ) {}

  /**
   * Analyses a report sent to `claims` (the verified return paths it was addressed to; none
   * for a feedback-loop mailbox) and stores what it says; resolves once durable.
   */
  async take(raw: Buffer, claims: ReturnPathClaim[]): Promise<ReportOutcome> {
    // The analyser never throws: what it cannot read is not-bounce, taken and dropped (a 4xx
    // would have the sender retry it for days).
    const analysis = await analyseMessage(raw, this.classifier());
    const kind = analysis.kind;
    if (kind === 'auto-reply' || kind === 'not-bounce') {
      return { analysis, records: [], ignored: kind === 'auto-reply' ? kind : 'not-a-report' };
    }
    const found = this.claimsOf(raw, analysis, claims);
    if (found.claims.length === 0) return { analysis, records: [], ignored: 'no-return-path' };
    const at = new Date().toISOString();
    const made = found.claims.map((c) => {
      const history = this.recorder.forMessage(c.messageId);
      const record = this.recordFor(analysis, c, history, found.matchedBy, at);
      return { record, repeated: record !== null && history.some((h) => sameReport(h, record)) };
    });
    const records = made
      .filter((m) => m.record && !m.repeated)
      .map((m) => m.record as AsyncBounceRecord | ComplaintRecord);
    if (records.length === 0) {
      const ignored = made.some((m) => m.repeated) ? 'duplicate' : 'no-recipient';
      return { analysis, records: [], ignored };
    }
    let stored: StoredRecord[] = [];
    await this.committer.submit(() => {
      stored = records.map((r) => this.recorder.insert(r));
    });
    this.recorder.publish(stored);
    return { analysis, records: stored };
  }

  /** The recipients a report is about: its envelope's return paths, else one it quotes. */
  private claimsOf(raw: Buffer, a: InboundAnalysis, claims: ReturnPathClaim[]) {
    if (claims.length > 0) {
      const unique = [...new Map(claims.map((c) => [c.recipientId, c])).values()];
      return { claims: unique, matchedBy: 'return-path' as MatchedBy };
    }
    const quoted =
      this.returnPaths.findIn(a.original?.headers ?? '') ??
      this.returnPaths.findIn(raw.subarray(0, SEARCH_BYTES).toString('latin1'));
    return { claims: quoted ? [quoted] : [], matchedBy: 'quoted-return-path' as MatchedBy };
  }

  private recordFor(
    a: InboundAnalysis,
    claim: ReturnPathClaim,
    history: StoredRecord[],
    matchedBy: MatchedBy,
    at: string,
  ): AsyncBounceRecord | ComplaintRecord | null {
    const sent = sentTo(claim, history);
    if (a.kind === 'complaint') {
      const address = sent?.address ?? a.complaint?.originalRcptTo[0];
      if (!address) return null;
      return {
        type: 'Complaint',
        at,
        ...about(claim, address, sent),
        feedbackType: a.complaint?.feedbackType ?? 'abuse',
        ...optional({
          userAgent: a.complaint?.userAgent,
          sourceIp: a.complaint?.sourceIp,
          arrivalDate: a.complaint?.arrivalDate,
          reportedBy: a.from,
        }),
        matchedBy,
      };
    }
    const reported = pickRecipient(a, sent?.address);
    const address = sent?.address ?? reported?.address;
    if (!reported || !address) return null;
    const action = reported.action === 'delayed' ? 'delayed' : 'failed';
    return {
      type: 'AsyncBounce',
      at,
      ...about(claim, address, sent),
      action,
      ...optional({
        status: reported.status,
        diagnostic: reported.diagnostic,
        remoteMta: reported.remoteMta,
        reportingMta: a.reportingMta,
        reportedAddress:
          reported.address.toLowerCase() !== address.toLowerCase() ? reported.address : undefined,
      }),
      format: a.format,
      bounce: reported.bounce,
      matchedBy,
    };
  }
}

/** The recipient as we sent to it, from its message's Reception record (kept for retention). */
function sentTo(claim: ReturnPathClaim, history: StoredRecord[]) {
  const reception = history.find(
    (r): r is StoredRecord & ReceptionRecord => r.type === 'Reception',
  );
  const rcpt = reception?.recipients.find((r) => r.id === claim.recipientId);
  return rcpt
    ? { address: rcpt.address, sender: reception!.sender, queue: reception!.queue }
    : null;
}

/**
 * Whether a stored record already says what a new one would: the same report sent again (a
 * reporting server that lost our 250 and retried), or one report per copy of a message.
 */
function sameReport(old: StoredRecord, r: AsyncBounceRecord | ComplaintRecord): boolean {
  if (old.type !== r.type || !('recipientId' in old) || old.recipientId !== r.recipientId) {
    return false;
  }
  if (old.type === 'AsyncBounce' && r.type === 'AsyncBounce') {
    return old.action === r.action && old.status === r.status;
  }
  return old.type === 'Complaint' && r.type === 'Complaint' && old.feedbackType === r.feedbackType;
}

/**
 * The reported recipient a record is about: the one with our address, else the first that
 * failed (a forwarder reports the final address), else the first delayed.
 */
function pickRecipient(a: InboundAnalysis, address?: string): ReportedRecipient | undefined {
  const wanted = a.recipients.filter((r) => r.action === 'failed' || r.action === 'delayed');
  const same = address && wanted.find((r) => r.address.toLowerCase() === address.toLowerCase());
  return same || wanted.find((r) => r.action === 'failed') || wanted[0];
}

function about(
  claim: ReturnPathClaim,
  address: string,
  sent: { sender: string; queue?: string } | null,
) {
  return {
    messageId: claim.messageId,
    recipientId: claim.recipientId,
    recipient: address,
    domain: address.slice(address.lastIndexOf('@') + 1).toLowerCase(),
    ...(sent ? { sender: sent.sender, ...(sent.queue ? { queue: sent.queue } : {}) } : {}),
  };
}

/** The fields whose value is defined. */
function optional<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
