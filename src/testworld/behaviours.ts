// Ready-made receiver scripts for the usual behaviours of real mail providers, composable.
import type { ConnInfo, ReceiverAction, ReceiverScript, Stage, Transaction } from './script.js';
import { STAGE_HOOK } from './script.js';

export type { Stage } from './script.js';

/** Picks recipients: local parts (or full addresses, with '@'), or a predicate on the address. */
export type RecipientMatch = string[] | ((address: string) => boolean);

/** A clock in milliseconds since the epoch; injectable so tests need not sleep. */
export type Clock = () => number;

// The window of rateLimit421, in milliseconds: "per second" as providers state their limits.
const RATE_WINDOW_MS = 1000;

/** Accepts everything with the default replies. */
export function accept(): ReceiverScript {
  return {};
}

/** Rejects the matching recipients at RCPT with 550 5.1.1 (bad mailbox). */
export function unknownUsers(match: RecipientMatch): ReceiverScript {
  return replyToRecipients(match, (to) => `550 5.1.1 <${to}>: User unknown`);
}

/** Refuses the matching recipients at RCPT with 552 5.2.2 (mailbox full). */
export function mailboxFull(match: RecipientMatch): ReceiverScript {
  return replyToRecipients(match, (to) => `552 5.2.2 <${to}>: Mailbox full`);
}

/** Refuses connections from the given source IPs with a 554 banner (a blocked IP). */
export function blockSources(ips: string[]): ReceiverScript {
  const blocked = new Set(ips);
  return {
    onConnect: (c) =>
      blocked.has(c.remoteAddress)
        ? `554 5.7.1 Service unavailable; client host [${c.remoteAddress}] blocked`
        : undefined,
  };
}

/**
 * Greylisting: the first RCPT of each (source IP, sender, recipient) triplet gets a 451 4.7.1,
 * and so does every retry until `seconds` have passed since that first attempt.
 */
export function greylist(seconds: number, now: Clock = Date.now): ReceiverScript {
  const firstSeen = new Map<string, number>();
  return {
    onRcptTo: (c, to, t) => {
      const key = `${c.remoteAddress}\n${t.from}\n${to}`.toLowerCase();
      const first = firstSeen.get(key) ?? now();
      firstSeen.set(key, first);
      const waitMs = first + seconds * 1000 - now();
      if (waitMs <= 0) return undefined;
      return `451 4.7.1 Greylisted, try again in ${Math.ceil(waitMs / 1000)} seconds`;
    },
  };
}

/**
 * More than maxPerSecond transactions in any 1 s window of this script get 421 4.7.0 at MAIL,
 * which also closes the connection. Counted per script: give each receiver its own.
 */
export function rateLimit421(maxPerSecond: number, now: Clock = Date.now): ReceiverScript {
  const window = new SlidingWindow(RATE_WINDOW_MS);
  return {
    onMailFrom: () => {
      if (window.count(now()) >= maxPerSecond) return '421 4.7.0 Too many messages, slow down';
      window.add(now());
      return undefined;
    },
  };
}

/** The first n transactions get 451 4.3.0 at the end of DATA; later ones are accepted. */
export function tempFailFirst(n: number): ReceiverScript {
  let failed = 0;
  return {
    onMessage: () => {
      if (failed >= n) return undefined;
      failed++;
      return '451 4.3.0 Temporary failure, try again later';
    },
  };
}

/** Answers 354, then drops the connection after `bytes` body bytes: the message is lost. */
export function dropMidData(bytes: number): ReceiverScript {
  return { onDataStart: () => ({ disconnectAfterBytes: bytes }) };
}

/** Never answers at the given stage (the client must time out). */
export function stallAt(stage: Stage): ReceiverScript {
  return atStage(stage, { stall: true });
}

/** Disconnects without a word at the given stage. */
export function disconnectAt(stage: Stage): ReceiverScript {
  return atStage(stage, { disconnect: true });
}

/** Answers `reply` to every recipient (or at another stage), e.g. '554 5.7.1 Blocked'. */
export function rejectAll(reply: string, stage: Stage = 'rcpt'): ReceiverScript {
  return atStage(stage, reply);
}

/** The same action at every call of one stage's hook. */
export function atStage(stage: Stage, action: ReceiverAction): ReceiverScript {
  return { [STAGE_HOOK[stage]]: () => action };
}

/** Combines scripts: for each hook, the first script returning an action wins. */
export function compose(...scripts: ReceiverScript[]): ReceiverScript {
  const first = (call: (s: ReceiverScript) => ReceiverAction | undefined) => {
    for (const s of scripts) {
      const action = call(s);
      if (action !== undefined) return action;
    }
    return undefined;
  };
  return {
    onConnect: (c) => first((s) => s.onConnect?.(c)),
    onEhlo: (c, name) => first((s) => s.onEhlo?.(c, name)),
    onMailFrom: (c, from) => first((s) => s.onMailFrom?.(c, from)),
    onRcptTo: (c, to, t) => first((s) => s.onRcptTo?.(c, to, t)),
    onDataStart: (c, t) => first((s) => s.onDataStart?.(c, t)),
    onMessage: (c, m) => first((s) => s.onMessage?.(c, m)),
  };
}

/** A RCPT script replying to the matching recipients and leaving the others alone. */
function replyToRecipients(match: RecipientMatch, reply: (to: string) => string): ReceiverScript {
  const matches = recipientMatcher(match);
  return {
    onRcptTo: (_c: ConnInfo, to: string, _t: Transaction) => (matches(to) ? reply(to) : undefined),
  };
}

/** Turns a RecipientMatch into a case-insensitive predicate. */
export function recipientMatcher(match: RecipientMatch): (address: string) => boolean {
  if (typeof match === 'function') return match;
  const wanted = new Set(match.map((m) => m.toLowerCase()));
  return (address) => {
    const lower = address.toLowerCase();
    const at = lower.lastIndexOf('@');
    return wanted.has(lower) || (at >= 0 && wanted.has(lower.slice(0, at)));
  };
}

/** Timestamps within the last windowMs, oldest first, dropped as they age out. */
class SlidingWindow {
  private times: number[] = [];
  private head = 0;

  constructor(private readonly windowMs: number) {}

  /** Events within the window ending at now. */
  count(now: number): number {
    while (this.head < this.times.length && (this.times[this.head] ?? 0) <= now - this.windowMs) {
      this.head++;
    }
    // Compact now and then instead of shifting on every expiry.
    if (this.head > 1024 && this.head * 2 > this.times.length) {
      this.times = this.times.slice(this.head);
      this.head = 0;
    }
    return this.times.length - this.head;
  }

  add(at: number): void {
    this.times.push(at);
  }
}
