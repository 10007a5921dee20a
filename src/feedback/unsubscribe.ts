/**
 * One-click unsubscribe (RFC 8058, RFC 2369): signed links the engine can put in outgoing
 * mail as List-Unsubscribe with List-Unsubscribe-Post, and their verification when a mailbox
 * provider POSTs "List-Unsubscribe=One-Click" to them. A link names one recipient and one
 * message and carries an HMAC-SHA256 under a key that never leaves the data directory, so
 * nobody can unsubscribe an address they did not receive a link for.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { secretKey } from '../spool/secret.js';

/** What a valid link says. */
export interface UnsubscribeClaim {
  address: string;
  messageId: string;
}

// Bytes of the MAC kept in the link: 128 bits, far beyond guessing, short enough for a URL.
const MAC_BYTES = 16;

/** Makes and checks unsubscribe links. */
export class UnsubscribeLinks {
  private readonly key: Buffer;

  /** Loads the key from dataDir/unsubscribe-key, making it (mode 0600) on first use. */
  constructor(
    dataDir: string,
    private readonly baseUrl: string | undefined,
  ) {
    this.key = secretKey(dataDir, 'unsubscribe-key');
  }

  /** Whether links can be made (feedback.unsubscribeUrl is set). */
  get enabled(): boolean {
    return this.baseUrl !== undefined;
  }

  /** The signed token for one recipient of one message. */
  token(address: string, messageId: string): string {
    const payload = Buffer.from(JSON.stringify([address.toLowerCase(), messageId])).toString(
      'base64url',
    );
    return `${payload}.${this.mac(payload).toString('base64url')}`;
  }

  /** The claim of a token, or null when it is malformed or its signature is wrong. */
  verify(token: string): UnsubscribeClaim | null {
    const [payload, mac] = token.split('.');
    if (!payload || !mac) return null;
    const given = Buffer.from(mac, 'base64url');
    const want = this.mac(payload);
    if (given.length !== want.length || !timingSafeEqual(given, want)) return null;
    try {
      const [address, messageId] = JSON.parse(Buffer.from(payload, 'base64url').toString()) as [
        string,
        string,
      ];
      return typeof address === 'string' && typeof messageId === 'string'
        ? { address, messageId }
        : null;
    } catch {
      return null;
    }
  }

  /** The header fields to add to a message for one recipient (CRLF-terminated lines). */
  headerFields(address: string, messageId: string): string {
    const url = `${this.baseUrl!.replace(/\/$/, '')}/unsubscribe/${this.token(address, messageId)}`;
    return `List-Unsubscribe: <${url}>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n`;
  }

  private mac(payload: string): Buffer {
    return createHmac('sha256', this.key).update(payload).digest().subarray(0, MAC_BYTES);
  }
}
