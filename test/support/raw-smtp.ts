/** A raw SMTP conversation over a socket, for tests that must send exactly chosen bytes. */
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/** A line-oriented client: write bytes, read whole replies. */
export class RawSmtp {
  private buffer = '';
  private waiters: (() => void)[] = [];
  closed = false;

  private constructor(private socket: Socket) {
    this.attach(socket);
  }

  /** Connects (optionally from a chosen local address) and reads the greeting. */
  static async open(
    port: number,
    localAddress?: string,
  ): Promise<{ c: RawSmtp; greeting: string }> {
    const socket = connect({ host: '127.0.0.1', port, localAddress });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const c = new RawSmtp(socket);
    return { c, greeting: await c.reply() };
  }

  private attach(socket: Socket): void {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.buffer += d;
      this.waiters.splice(0).forEach((w) => w());
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.waiters.splice(0).forEach((w) => w());
    });
  }

  /** Writes raw bytes. */
  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Sends a command line and returns its reply. */
  async cmd(line: string): Promise<string> {
    this.write(line + '\r\n');
    return this.reply();
  }

  /** Reads one whole (possibly multi-line) reply, or '' when the server closed. */
  async reply(timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = /^(?:\d{3}-[^\n]*\n)*\d{3}(?: [^\n]*)?\r?\n/.exec(this.buffer);
      if (m) {
        this.buffer = this.buffer.slice(m[0].length);
        return m[0].trimEnd();
      }
      if (this.closed) return '';
      if (Date.now() > deadline)
        throw new Error(`no reply; buffer: ${JSON.stringify(this.buffer)}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }

  /** Upgrades to TLS after a 220 to STARTTLS (certificate not verified: a test certificate). */
  async startTls(): Promise<void> {
    const secure = tlsConnect({ socket: this.socket, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    this.socket = secure;
    this.attach(secure);
  }

  /** Closes the socket. */
  close(): void {
    this.socket.destroy();
  }
}
