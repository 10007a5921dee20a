/**
 * Bodies kept in memory from acceptance until every recipient that took them into memory has
 * left it (delivered, bounced, deferred). The first attempt then needs no store read. Bounded
 * in bytes: past the cap, bodies are simply not kept and are read from the store instead.
 */

interface Entry {
  body: Buffer;
  holders: number;
}

/** A byte-bounded map of message id to body, with a count of holders per body. */
export class BodyCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  /** Keeps `body` for `holders` recipients, if it fits under the cap. */
  hold(messageId: string, body: Buffer, holders: number): void {
    if (this.bytes + body.length > this.maxBytes) return;
    this.entries.set(messageId, { body, holders });
    this.bytes += body.length;
  }

  /** The body, if kept. */
  get(messageId: string): Buffer | undefined {
    return this.entries.get(messageId)?.body;
  }

  /** One holder is done with the body; the last one frees it. */
  release(messageId: string): void {
    const e = this.entries.get(messageId);
    if (!e || --e.holders > 0) return;
    this.entries.delete(messageId);
    this.bytes -= e.body.length;
  }
}
