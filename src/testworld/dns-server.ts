// The test world's DNS server: answers for test domains over UDP and TCP on one port.
import { once } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import { isIPv6 } from 'node:net';
import { Packet, TCPServer, UDPServer } from 'dns2';
import type { Packet as DnsPacket } from 'dns2';
import { RCODE, Zone } from './zone.js';
import type { ZoneRecords } from './zone.js';

export type { ZoneRecords } from './zone.js';
export { reverseName } from './zone.js';

// With port 0 the UDP port is picked first and TCP must then get the same number; another
// process may hold it on TCP, so we try fresh ports this many times before giving up.
const MAX_BIND_ATTEMPTS = 20;

type Send = (response: DnsPacket | Buffer) => Promise<Buffer> | void;
type Handler = (request: DnsPacket, send: Send, overTcp: boolean) => void;

/** A UDP and a TCP DNS listener bound to the same host and port. */
interface Listeners {
  udp: InstanceType<typeof UDPServer>;
  tcp: InstanceType<typeof TCPServer>;
}

/**
 * An authoritative DNS server for the test zone, on loopback, speaking UDP and TCP.
 * Limitation: dns2 parses a garbage packet whose header claims thousands of records slowly (up
 * to a second of CPU each, blocking the process); tests that fuzz it must keep the counts small.
 */
export class TestDnsServer {
  private readonly zone = new Zone();
  private readonly tcpSockets = new Set<Socket>();
  private readonly delayed = new Set<NodeJS.Timeout>();
  private listeners: Listeners | undefined;
  private queries = 0;
  private tcpQueries = 0;
  private hostPort = '';

  private constructor() {}

  /** Starts a server; by default on 127.0.0.1 with a random port shared by UDP and TCP. */
  static async start(opts: { host?: string; port?: number } = {}): Promise<TestDnsServer> {
    const host = opts.host ?? '127.0.0.1';
    const server = new TestDnsServer();
    const handler: Handler = (req, send, overTcp) => server.handle(req, send, overTcp);
    const listeners = await bindSamePort(host, opts.port ?? 0, handler);
    const port = (listeners.udp.address() as AddressInfo).port;
    server.hostPort = isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
    server.listeners = listeners;
    listeners.tcp.on('connection', (s: Socket) => server.trackTcp(s));
    return server;
  }

  /** "host:port" of the server, usable as GRIDPOST_DNS or in Resolver.setServers. */
  get address(): string {
    return this.hostPort;
  }

  /** Number of questions received so far, over UDP and TCP. */
  get queryCount(): number {
    return this.queries;
  }

  /** Number of questions received over TCP (after a truncated UDP answer, for instance). */
  get tcpQueryCount(): number {
    return this.tcpQueries;
  }

  /** Replaces every record of a name (case-insensitive, no trailing dot needed). */
  set(name: string, records: ZoneRecords): void {
    this.zone.set(name, records);
  }

  /** Replaces only the record kinds given, keeping the name's others. */
  merge(name: string, records: ZoneRecords): void {
    this.zone.merge(name, records);
  }

  /** Removes a name: it answers NXDOMAIN afterwards. */
  remove(name: string): void {
    this.zone.remove(name);
  }

  /** Stops listening, drops TCP connections and cancels delayed answers. */
  async stop(): Promise<void> {
    const listeners = this.listeners;
    if (!listeners) return;
    this.listeners = undefined;
    for (const timer of this.delayed) clearTimeout(timer);
    this.delayed.clear();
    for (const socket of this.tcpSockets) socket.destroy();
    const closed = [once(listeners.udp, 'close'), once(listeners.tcp, 'close')];
    listeners.udp.close();
    listeners.tcp.close();
    await Promise.all(closed);
  }

  /** Answers one request; called by the listeners. */
  private handle(request: DnsPacket, send: Send, overTcp: boolean): void {
    this.queries++;
    if (overTcp) this.tcpQueries++;
    const response = Packet.createResponseFromRequest(request);
    response.header.aa = 1;
    const question = request.questions[0];
    if (!question) {
      response.header.rcode = RCODE.FORMERR;
      return void sendQuietly(send, response);
    }
    const answer = this.zone.answer(question.name, question.type);
    response.header.rcode = answer.rcode;
    response.answers = answer.records;
    this.sendLater(send, response, answer.delayMs);
  }

  /** Sends now, or after delayMs unless the server stops first. */
  private sendLater(send: Send, response: DnsPacket, delayMs: number): void {
    if (delayMs <= 0) return void sendQuietly(send, response);
    const timer = setTimeout(() => {
      this.delayed.delete(timer);
      void sendQuietly(send, response);
    }, delayMs);
    this.delayed.add(timer);
  }

  private trackTcp(socket: Socket): void {
    this.tcpSockets.add(socket);
    socket.on('close', () => this.tcpSockets.delete(socket));
  }
}

/** Sends a response, ignoring a client that has gone away meanwhile. */
async function sendQuietly(send: Send, response: DnsPacket): Promise<void> {
  try {
    await send(response);
  } catch {
    // The client closed its socket or the server stopped: nobody is left to answer.
  }
}

/** Binds UDP then TCP on the same port; with port 0 retries until both get one number. */
async function bindSamePort(host: string, port: number, handler: Handler): Promise<Listeners> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await bindPair(host, port, handler);
    } catch (err) {
      const clash = (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
      if (port !== 0 || !clash || attempt >= MAX_BIND_ATTEMPTS) {
        throw new Error(`TestDnsServer: cannot listen on ${host}:${port}`, { cause: err });
      }
    }
  }
}

/** One attempt of bindSamePort. */
async function bindPair(host: string, port: number, handler: Handler): Promise<Listeners> {
  const udp = new UDPServer({ type: isIPv6(host) ? 'udp6' : 'udp4' });
  udp.on('request', (req: DnsPacket, send: Send) => handler(req, send, false));
  udp.bind(port, host);
  await once(udp, 'listening');
  const tcp = new TCPServer();
  tcp.on('request', (req: DnsPacket, send: Send) => handler(req, send, true));
  tcp.listen((udp.address() as AddressInfo).port, host);
  try {
    await once(tcp, 'listening');
  } catch (err) {
    udp.close();
    throw err;
  }
  // Errors after start-up (a send to a vanished client) must not crash the test process.
  udp.on('error', () => undefined);
  tcp.on('error', () => undefined);
  return { udp, tcp };
}
