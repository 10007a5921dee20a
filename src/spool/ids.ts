/**
 * Message ids: sortable by time, unique across restarts and engines. 9 base-36 characters of
 * milliseconds, 4 of a per-process counter, 4 random ones: e.g. "MJ2K4Z1QX0001A7F3".
 * A recipient's id is "<messageId>.<n>" with n counted from 1.
 */
let counter = 0;

/** A new message id. */
export function newMessageId(now = Date.now()): string {
  counter = (counter + 1) % 36 ** 4;
  const time = now.toString(36).padStart(9, '0');
  const seq = counter.toString(36).padStart(4, '0');
  // Uniqueness comes from time and counter; the random part only separates engines that start
  // in the same millisecond, so Math.random is enough (and far cheaper than crypto per message).
  const rand = Math.floor(Math.random() * 36 ** 4)
    .toString(36)
    .padStart(4, '0');
  return (time + seq + rand).toUpperCase();
}

/** The id of the n-th recipient (1-based) of a message. */
export function recipientId(messageId: string, n: number): string {
  return `${messageId}.${n}`;
}

/** Splits a recipient id into its message id, or null when it is not one. */
export function messageIdOf(recipientIdValue: string): string | null {
  const dot = recipientIdValue.lastIndexOf('.');
  return dot > 0 ? recipientIdValue.slice(0, dot) : null;
}
