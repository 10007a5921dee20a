/**
 * Prometheus metrics, served at /metrics. Outcome counters are fed from committed records, so
 * they agree with the accounting; gauges are read when scraped.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ReportOutcome } from '../feedback/reports.js';
import {
  isUserComplaint,
  type AttemptRecord,
  type ReceptionRecord,
  type StoredRecord,
} from '../records/types.js';

/** Sources that gauges read when scraped. */
export interface GaugeSources {
  queueSizes: () => Map<string, number>;
  outboundConnections: () => number;
  inboundConnections: () => number;
  readyInMemory: () => number;
  /** Ready queues (egress source x site) per state: running, throttled, backoff, ... */
  readyQueueStates: () => Map<string, number>;
  /** Response-rule actions in force, per kind. */
  actions: () => Map<string, number>;
  /** Maildomains by the status of their last DNS check (ok, wrong, missing, error). */
  maildomainDns?: () => Map<string, number>;
}

const OUTCOME: Partial<Record<StoredRecord['type'], string>> = {
  Delivery: 'delivered',
  TransientFailure: 'deferred',
  Bounce: 'bounced',
  Expiration: 'expired',
  Rejected: 'rejected',
  Complaint: 'complained',
};

/** The engine's metrics registry. */
export class Metrics {
  readonly registry = new Registry();
  private readonly received: Counter;
  private readonly outcomes: Counter;
  private readonly reports: Counter;
  private readonly signatures: Counter;
  readonly injectionLatency: Histogram;
  private readonly deliveryLatency: Histogram;

  constructor(sources: GaugeSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'gridpost_process_' });
    this.received = new Counter({
      name: 'gridpost_messages_received_total',
      help: 'Messages accepted into the spool',
      labelNames: ['via'],
      registers,
    });
    this.outcomes = new Counter({
      name: 'gridpost_recipient_outcomes_total',
      help: 'Recipient outcomes: delivered, deferred, bounced, expired, rejected, complained',
      labelNames: ['outcome'],
      registers,
    });
    this.reports = new Counter({
      name: 'gridpost_reports_total',
      help: 'Mail taken by the bounce listener, by kind and what became of it',
      labelNames: ['kind', 'result'],
      registers,
    });
    this.signatures = new Counter({
      name: 'gridpost_signatures_total',
      help: 'Signatures intake added: dkim-rsa-sha256, dkim-ed25519-sha256, smime',
      labelNames: ['kind'],
      registers,
    });
    // Seconds from the last DATA byte (or the HTTP request) to the durable acknowledgement.
    this.injectionLatency = new Histogram({
      name: 'gridpost_injection_latency_seconds',
      help: 'Time from a complete message to its durable acknowledgement',
      labelNames: ['via'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.deliveryLatency = new Histogram({
      name: 'gridpost_delivery_latency_seconds',
      help: 'Time from reception to delivery, per delivered recipient',
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 3600, 86400],
      registers,
    });
    this.gauges(sources);
  }

  private gauges(s: GaugeSources): void {
    const registers = [this.registry];
    new Gauge({
      name: 'gridpost_queue_recipients',
      help: 'Recipients waiting or in delivery, per queue',
      labelNames: ['queue'],
      registers,
      collect() {
        for (const [queue, n] of s.queueSizes()) this.set({ queue }, n);
      },
    });
    new Gauge({
      name: 'gridpost_connections_open',
      help: 'Open SMTP connections',
      labelNames: ['direction'],
      registers,
      collect() {
        this.set({ direction: 'outbound' }, s.outboundConnections());
        this.set({ direction: 'inbound' }, s.inboundConnections());
      },
    });
    new Gauge({
      name: 'gridpost_ready_recipients',
      help: 'Recipients in memory waiting for a connection',
      registers,
      collect() {
        this.set(s.readyInMemory());
      },
    });
    new Gauge({
      name: 'gridpost_ready_queues',
      help: 'Ready queues (egress source x site) by state',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        for (const [state, n] of s.readyQueueStates()) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'gridpost_shaping_actions',
      help: 'Response-rule actions in force (backoff, suspend, disable-source)',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        for (const [kind, n] of s.actions()) this.set({ kind }, n);
      },
    });
    new Gauge({
      name: 'gridpost_maildomains',
      help: 'Maildomains by the status of their last DNS check (unchecked until the first one)',
      labelNames: ['dns'],
      registers,
      collect() {
        this.reset();
        for (const [dns, n] of s.maildomainDns?.() ?? []) this.set({ dns }, n);
      },
    });
  }

  /** Counts committed records. */
  observe(records: StoredRecord[]): void {
    for (const r of records) {
      if (r.type === 'Reception') this.observeReception(r);
      const outcome = r.type === 'Complaint' && !isUserComplaint(r) ? undefined : OUTCOME[r.type];
      if (outcome) this.outcomes.inc({ outcome });
      if (r.type === 'Delivery') this.observeDelivery(r);
    }
  }

  /** Counts a report the bounce listener took (result: recorded, or why it was ignored). */
  observeReport(o: ReportOutcome): void {
    this.reports.inc({ kind: o.analysis.kind, result: o.ignored ?? 'recorded' });
  }

  private observeReception(r: ReceptionRecord): void {
    this.received.inc({ via: r.via });
    for (const d of r.signatures?.dkim ?? []) this.signatures.inc({ kind: `dkim-${d.algorithm}` });
    if (r.signatures?.smime) this.signatures.inc({ kind: 'smime' });
  }

  private observeDelivery(r: AttemptRecord): void {
    this.deliveryLatency.observe(r.timings.sinceReceptionMs / 1000);
  }
}
