/**
 * Intake policy, shared by SMTP and HTTP: who may send through the engine, the limits, the
 * message checks, and the hand-over to the scheduler, which answers once the message is
 * durable. Every refusal gets a Rejected record and a coded reason.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { SmtpReply } from '../delivery/reply.js';
import type { RejectedRecord } from '../records/types.js';
import type { Scheduler } from '../scheduler/scheduler.js';
import { newMessageId } from '../spool/ids.js';
import type { AcceptedMessage, NewMessage, Spool } from '../spool/spool.js';
import type { Suppression, SuppressionList } from '../feedback/suppression.js';
import type { UnsubscribeLinks } from '../feedback/unsubscribe.js';
import type { PolicyService } from '../shaping/policy-service.js';
import { isRefusal, prepareMessage, type IntakeRefusal } from './message.js';
import { NetworkSet } from './networks.js';
import { takeRoutingFields } from './routing-headers.js';
import { runChecks, type CheckReason } from './checks.js';
import { readHeader } from './header.js';
import type { Maildomains, SigningPlan } from '../maildomains/maildomains.js';
import { signForPlan } from '../signing/signing.js';
import { GridpostError } from '../errors/catalogue.js';
import { signingRefusal } from '../signing/smime-credential.js';

/** A message offered by a client, before checks. */
export interface Offer {
  sender: string;
  recipients: string[];
  raw: Buffer;
  /** The queue asked for; the From maildomain's default queue, else "default", when absent. */
  queue?: string;
  /** The egress pool asked for; the queue's pool when absent. */
  pool?: string;
  /** Add a one-click unsubscribe link; the queue's listUnsubscribe when absent. */
  listUnsubscribe?: boolean;
  via: 'smtp' | 'http';
  client: { ip?: string; user?: string; apiKey?: string; helo?: string; tls?: boolean };
}

/** The outcome of an offer: accepted (durable) or refused with a reason. */
export type OfferResult =
  { ok: true; accepted: AcceptedMessage } | { ok: false; refusal: IntakeRefusal | StorageRefusal };

/** A refusal that is not about the message's bytes. */
export interface StorageRefusal {
  reason:
    | 'storage'
    | 'batch-refused'
    | 'unknown-queue'
    | 'unknown-pool'
    | 'suppressed'
    | 'smime-refused'
    | CheckReason;
  code: number;
  enhanced: string;
  text: string;
}

const STORAGE_FULL: StorageRefusal = {
  reason: 'storage',
  code: 452,
  enhanced: '4.3.1',
  text: 'Insufficient system storage, try again later',
};

/** For the other messages of a batch in which one was refused: nothing partial is queued. */
const NOT_QUEUED: StorageRefusal = {
  reason: 'batch-refused',
  code: 554,
  enhanced: '5.6.0',
  text: 'Not queued: another message of the same batch was refused',
};

/** A message that passed the checks, with how it is to be signed. */
interface Prepared {
  message: NewMessage;
  plan?: SigningPlan;
}

function isRefused(
  p: Prepared | NewMessage | IntakeRefusal | StorageRefusal,
): p is IntakeRefusal | StorageRefusal {
  return 'reason' in p;
}

/** Applies intake policy and queues messages. */
export class Intake {
  private readonly relayNetworks: NetworkSet;
  /** The suppression list's version at the last check (see SuppressionList.version). */
  private checkedVersion = -1;

  constructor(
    private readonly config: Config,
    private readonly scheduler: Scheduler,
    private readonly spool: Spool,
    private readonly log: Logger,
    private readonly policy: PolicyService,
    private readonly suppressions: SuppressionList,
    private readonly unsubscribe: UnsubscribeLinks,
    private readonly maildomains: Maildomains,
  ) {
    this.relayNetworks = new NetworkSet(config.smtp.allowedNetworks);
  }

  /** Whether a client may relay: authenticated, or from an allowed network. */
  mayRelay(ip: string, user?: string): boolean {
    return user !== undefined || this.relayNetworks.has(ip);
  }

  /** Checks and stores messages atomically: all of them are queued, or none. */
  async offer(offers: Offer[]): Promise<OfferResult[]> {
    const prepared = offers.map((o) => this.prepare(o));
    if (prepared.some(isRefused)) {
      return prepared.map((p) => ({ ok: false, refusal: isRefused(p) ? p : NOT_QUEUED }));
    }
    const signed = await Promise.all((prepared as Prepared[]).map((p) => this.sign(p)));
    if (signed.some(isRefused)) {
      return signed.map((p) => ({ ok: false, refusal: isRefused(p) ? p : NOT_QUEUED }));
    }
    try {
      const accepted = await this.scheduler.accept(signed as NewMessage[]);
      return accepted.map((a) => ({ ok: true, accepted: a }));
    } catch (err) {
      this.log.error({ err }, 'spool write failed; messages refused with 452');
      return offers.map(() => ({ ok: false, refusal: STORAGE_FULL }));
    }
  }

  private prepare(offer: Offer): Prepared | IntakeRefusal | StorageRefusal {
    const routed = offer.via === 'smtp' ? this.routeByHeader(offer) : offer;
    if ('reason' in routed) return routed;
    const o = this.withoutSuppressed(routed);
    if ('reason' in o) return o;
    const messageId = newMessageId();
    const now = new Date();
    const prepared = prepareMessage(o.raw, {
      hostname: this.config.hostname,
      messageId,
      helo: o.client.helo,
      clientIp: o.client.ip,
      protocol: protocolName(o),
      recipient: o.recipients.length === 1 ? o.recipients[0] : undefined,
      now,
    });
    if (isRefusal(prepared)) return prepared;
    const checked = this.check(o, prepared, messageId, now);
    if ('reason' in checked) return checked;
    const { body, queue, plan, warnings } = checked;
    const message: NewMessage = {
      id: messageId,
      sender: o.sender,
      recipients: o.recipients,
      body,
      queue,
      ...(o.pool ? { pool: o.pool } : {}),
      maxAgeMs: this.scheduler.queue(queue).maxAge,
      suppressionChecked: this.checkedVersion,
      via: o.via,
      client: { ip: o.client.ip, user: o.client.user, apiKey: o.client.apiKey },
      ...(plan ? { maildomain: plan.maildomain } : {}),
      ...(warnings.length ? { warnings } : {}),
    };
    return { message, ...(plan ? { plan } : {}) };
  }

  /**
   * The deliverability checks of a prepared message, once its maildomain has chosen the queue
   * and the queue's unsubscribe link is in: the body to store, its queue and signing plan, and
   * the warnings; or the refusal.
   */
  private check(o: Offer, prepared: Buffer, messageId: string, now: Date) {
    const first = readHeader(prepared);
    const plan = first.from ? this.maildomains.plan(first.from) : undefined;
    const queue = this.queueOf(o, plan);
    const body = this.withUnsubscribeLink(prepared, o, queue, messageId);
    const header = body === prepared ? first : readHeader(body);
    const bulk = this.policy.current.queue(queue).bulk;
    const input = { header, plan, bulk, maildomains: this.maildomains.size };
    const verdict = runChecks(input, this.config.checks);
    if (verdict.refusal) return verdict.refusal;
    const smime =
      plan?.account && first.from ? signingRefusal(plan.account, first.from, now) : null;
    if (smime) {
      const refusal: StorageRefusal = {
        reason: 'smime-refused',
        code: 554,
        enhanced: '5.7.1',
        text: smime.text,
      };
      return refusal;
    }
    return { body, queue, plan, warnings: verdict.warnings };
  }

  /** The queue asked for, else the maildomain's default queue (if the policy still has it). */
  private queueOf(o: Offer, plan: SigningPlan | undefined): string {
    if (o.queue) return o.queue;
    const fallback = plan ? this.maildomains.find(plan.maildomain)?.defaultQueue : null;
    return fallback && this.policy.current.hasQueue(fallback) ? fallback : 'default';
  }

  /**
   * Signs a checked message as its plan says (S/MIME, then DKIM; the key operations off the
   * event loop). A message the signers refuse (a certificate that cannot sign it after all) is
   * refused, not queued unsigned.
   */
  private async sign(p: Prepared): Promise<NewMessage | StorageRefusal> {
    if (!p.plan || (p.plan.dkim.length === 0 && !p.plan.account)) return p.message;
    try {
      const { body, signatures } = await signForPlan(p.message.body, p.plan, new Date());
      return { ...p.message, body, signatures };
    } catch (err) {
      if (!(err instanceof GridpostError)) throw err;
      this.log.warn({ err, messageId: p.message.id }, 'signing refused the message');
      return { reason: 'smime-refused', code: 554, enhanced: '5.7.1', text: err.message };
    }
  }

  /**
   * An SMTP offer with the queue and pool of its X-Gridpost-Queue / X-Gridpost-Pool fields
   * (taken out of the message), or the refusal when they name nothing the policy has.
   */
  private routeByHeader(o: Offer): Offer | StorageRefusal {
    const fields = takeRoutingFields(o.raw);
    if (fields.raw === o.raw) return o;
    const policy = this.policy.current;
    const queue = fields.queue ?? o.queue;
    if (queue !== undefined && !policy.hasQueue(queue)) {
      const text = `X-Gridpost-Queue names no queue "${queue}"`;
      return { reason: 'unknown-queue', code: 550, enhanced: '5.7.1', text };
    }
    if (fields.pool !== undefined && !policy.pool(fields.pool)) {
      const text = `X-Gridpost-Pool names no pool "${fields.pool}"`;
      return { reason: 'unknown-pool', code: 550, enhanced: '5.7.1', text };
    }
    return {
      ...o,
      raw: fields.raw,
      ...(queue ? { queue } : {}),
      ...(fields.pool ? { pool: fields.pool } : {}),
    };
  }

  /**
   * The body with a one-click unsubscribe link for its one recipient, when its queue or the
   * call asks for one and links are configured; as it was otherwise (also when the message
   * already has a List-Unsubscribe field: the sender's own link wins).
   */
  private withUnsubscribeLink(body: Buffer, o: Offer, queue: string, messageId: string): Buffer {
    const wanted = o.listUnsubscribe ?? this.policy.current.queue(queue).listUnsubscribe;
    if (!wanted || !this.unsubscribe.enabled || o.recipients.length !== 1) return body;
    const end = body.indexOf('\r\n\r\n');
    const header = body.subarray(0, end < 0 ? body.length : end).toString('latin1');
    if (/^list-unsubscribe[ \t]*:/im.test(header)) return body;
    const fields = this.unsubscribe.headerFields(o.recipients[0]!, messageId);
    return Buffer.concat([Buffer.from(fields), body]);
  }

  /** The suppression entry of an address, if it is on the list. */
  suppressed(address: string): Suppression | undefined {
    return this.suppressions.get(address);
  }

  /** Writes the Suppressed record of a recipient refused at intake. */
  noteSuppressed(address: string, s: Suppression, via: Offer['via']): void {
    this.spool.note({
      type: 'Suppressed',
      at: new Date().toISOString(),
      recipient: address,
      domain: address.slice(address.lastIndexOf('@') + 1).toLowerCase(),
      stage: 'intake',
      suppression: { reason: s.reason, source: s.source, since: s.at },
      via,
    });
  }

  /**
   * The offer without its suppressed recipients (each gets a Suppressed record), or a refusal
   * when every one of them is suppressed.
   */
  private withoutSuppressed(o: Offer): Offer | StorageRefusal {
    this.checkedVersion = this.suppressions.version;
    const kept = o.recipients.filter((address) => {
      const s = this.suppressions.get(address);
      if (s) this.noteSuppressed(address, s, o.via);
      return !s;
    });
    if (kept.length === o.recipients.length) return o;
    if (kept.length > 0) return { ...o, recipients: kept };
    const text = 'Every recipient is on the suppression list';
    return { reason: 'suppressed', code: 550, enhanced: '5.7.1', text };
  }

  /** Writes a Rejected record for a refusal (not awaited: it is accounting, not state). */
  rejected(r: Omit<RejectedRecord, 'type' | 'at'>): void {
    this.spool.note({ type: 'Rejected', at: new Date().toISOString(), ...r });
  }
}

/** The "with" word of the Received field (RFC 3848). */
function protocolName(o: Offer): string {
  if (o.via === 'http') return 'HTTP';
  return `ESMTP${o.client.tls ? 'S' : ''}${o.client.user ? 'A' : ''}`;
}

/** A refusal as an SMTP reply value. */
export function refusalReply(r: { code: number; enhanced: string; text: string }): SmtpReply {
  return { code: r.code, enhanced: r.enhanced, text: r.text };
}
