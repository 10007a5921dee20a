/**
 * Signed return paths (VERP): every outgoing recipient gets its own envelope sender,
 * b-<message id>-<n>-<mac>@<bounce domain>, so a DSN that comes back, days later and in
 * whatever format, names the exact recipient it is about even when the report itself does not.
 * The MAC is 64 bits of HMAC-SHA256 over the recipient id under a key kept in the data
 * directory: a forged or mistyped address does not verify and is refused.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { recipientId } from '../spool/ids.js';
import { secretKey } from '../spool/secret.js';

/** What a valid return path names. */
export interface ReturnPathClaim {
  messageId: string;
  recipientId: string;
}

const MAC_HEX = 16;
// Message ids are 17 base-36 characters (spool/ids.ts); the recipient number follows.
const LOCAL = /^b-([0-9a-z]{17})-(\d{1,6})-([0-9a-f]{16})$/i;
// The same inside any text (a report quoting the original's Return-Path or headers).
const IN_TEXT = /\bb-[0-9a-z]{17}-\d{1,6}-[0-9a-f]{16}@[a-z0-9.-]+/gi;

/** Makes and checks signed return paths at the configured bounce domains. */
export class ReturnPaths {
  private readonly key: Buffer;
  private readonly domains: Set<string>;

  /**
   * `domain` is where new return paths point (none: senders are kept as given);
   * `alsoAccept` lists domains whose return paths are still honoured. A maildomain may name a
   * return-path domain of its own: `domainFor` gives it for a sender's domain, and `more`
   * lists every such domain, which the listener takes mail for too.
   */
  constructor(
    dataDir: string,
    readonly domain: string | undefined,
    alsoAccept: readonly string[] = [],
    private readonly domainFor: (senderDomain: string) => string | undefined = () => undefined,
    private readonly more: () => string[] = () => [],
  ) {
    this.key = secretKey(dataDir, 'return-path-key');
    this.domains = new Set([...(domain ? [domain] : []), ...alsoAccept]);
  }

  /** Whether outgoing mail gets signed return paths. */
  get enabled(): boolean {
    return this.domain !== undefined;
  }

  /** Whether the listener takes mail for this domain. */
  accepts(domain: string): boolean {
    const lower = domain.toLowerCase();
    return this.domains.has(lower) || this.more().includes(lower);
  }

  /**
   * The return path of one recipient, by its id "<message id>.<n>" ("b-...@domain"), at the
   * return-path domain of the sender's maildomain, else at the configured domain.
   */
  forRecipient(id: string, sender = ''): string {
    const dot = id.lastIndexOf('.');
    const local = `b-${id.slice(0, dot).toLowerCase()}-${id.slice(dot + 1)}`;
    const own = sender.includes('@')
      ? this.domainFor(sender.slice(sender.lastIndexOf('@') + 1))
      : undefined;
    return `${local}-${this.mac(id)}@${own ?? this.domain!}`;
  }

  /**
   * The claim of an address at one of our domains, or null when it is not a return path, is
   * malformed or its MAC is wrong (forged).
   */
  verify(address: string): ReturnPathClaim | null {
    const at = address.lastIndexOf('@');
    if (at < 0 || !this.accepts(address.slice(at + 1))) return null;
    const m = LOCAL.exec(address.slice(0, at));
    if (!m) return null;
    const messageId = m[1]!.toUpperCase();
    const id = recipientId(messageId, Number(m[2]));
    const want = Buffer.from(this.mac(id));
    const got = Buffer.from(m[3]!.toLowerCase());
    return timingSafeEqual(want, got) ? { messageId, recipientId: id } : null;
  }

  /** The first valid return path written anywhere in `text` (a quoted original), or null. */
  findIn(text: string): ReturnPathClaim | null {
    for (const m of text.matchAll(IN_TEXT)) {
      const claim = this.verify(m[0].replace(/\.+$/, ''));
      if (claim) return claim;
    }
    return null;
  }

  private mac(id: string): string {
    return createHmac('sha256', this.key).update(id).digest('hex').slice(0, MAC_HEX);
  }
}
