// MX resolution against a real DNS server (the test world's, over UDP) through node's Resolver,
// and the parsing of GRIDPOST_DNS.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createDnsLookup, parseDnsServers, type DnsLookup } from '../src/delivery/dns.js';
import { MxResolver, type MxResolverOptions, type Route } from '../src/delivery/mx.js';
import { formatReply } from '../src/delivery/reply.js';
import { TestDnsServer } from '../src/testworld/dns-server.js';

let dns: TestDnsServer;

before(async () => {
  dns = await TestDnsServer.start();
});
after(async () => {
  await dns.stop();
});

/** A DnsLookup on the test server that counts the calls of each method. */
function countingLookup(timeoutMs = 1_000): { lookup: DnsLookup; calls: Map<string, number> } {
  const real = createDnsLookup({ servers: [dns.address], timeoutMs, tries: 1 });
  const calls = new Map<string, number>();
  const count = <A extends unknown[], R>(name: string, fn: (...a: A) => Promise<R>) => {
    return (...a: A): Promise<R> => {
      calls.set(name, (calls.get(name) ?? 0) + 1);
      return fn(...a);
    };
  };
  const lookup: DnsLookup = {
    resolveMx: count('mx', real.resolveMx),
    resolve4: count('a', real.resolve4),
    resolve6: count('aaaa', real.resolve6),
    resolveTxt: count('txt', real.resolveTxt),
    reverse: count('ptr', real.reverse),
    resolveCname: count('cname', real.resolveCname),
  };
  return { lookup, calls };
}

function resolver(opts: MxResolverOptions = {}, timeoutMs?: number) {
  const { lookup, calls } = countingLookup(timeoutMs);
  return { mx: new MxResolver(lookup, opts), calls };
}

/** A route as plain text for got/want comparisons. */
function describeRoute(r: Route): string {
  if (r.kind !== 'hosts') return `${r.kind}: ${formatReply(r.reply)}`;
  const hosts = r.hosts.map((h) => `${h.preference} ${h.name} [${h.addresses.join(' ')}]`);
  return `hosts${r.implicit ? ' (implicit)' : ''}: ${hosts.join(', ')}`;
}

describe('MxResolver outcomes', () => {
  before(() => {
    dns.set('one.test', { mx: [{ exchange: 'mx1.one.test', priority: 10 }] });
    dns.set('mx1.one.test', { a: ['192.0.2.1'], aaaa: ['2001:db8::1'] });
    dns.set('implicit.test', { a: ['192.0.2.10', '192.0.2.11'] });
    dns.set('nullmx.test', { mx: [{ exchange: '', priority: 0 }] });
    dns.set('empty.test', {});
    dns.set('servfail.test', { servfail: true });
    dns.set('dropped.test', {
      mx: [
        { exchange: 'noaddr.dropped.test', priority: 5 },
        { exchange: '192.0.2.99', priority: 10 },
        { exchange: 'ok.dropped.test', priority: 20 },
      ],
    });
    dns.set('ok.dropped.test', { a: ['192.0.2.20'] });
    dns.set('noaddr.dropped.test', {});
    dns.set('allbad.test', { mx: [{ exchange: 'gone.allbad.test', priority: 10 }] });
    dns.set('hostfail.test', { mx: [{ exchange: 'sf.hostfail.test', priority: 10 }] });
    dns.set('sf.hostfail.test', { servfail: true });
    dns.set('mixed-null.test', {
      mx: [
        { exchange: '', priority: 0 },
        { exchange: 'mx1.one.test', priority: 10 },
      ],
    });
  });

  const cases: { name: string; domain: string; ipv6?: boolean; want: string }[] = [
    {
      name: 'one MX, IPv4 only by default',
      domain: 'one.test',
      want: 'hosts: 10 mx1.one.test [192.0.2.1]',
    },
    {
      name: 'IPv4 first, then IPv6',
      domain: 'one.test',
      ipv6: true,
      want: 'hosts: 10 mx1.one.test [192.0.2.1 2001:db8::1]',
    },
    {
      name: 'no MX records: implicit MX from the domain A records',
      domain: 'implicit.test',
      want: 'hosts (implicit): 0 implicit.test [192.0.2.10 192.0.2.11]',
    },
    {
      name: 'Null MX (RFC 7505)',
      domain: 'nullmx.test',
      want: 'nullmx: 556 5.1.10 Recipient address has null MX',
    },
    {
      name: 'a Null MX among real MX records is ignored',
      domain: 'mixed-null.test',
      want: 'hosts: 10 mx1.one.test [192.0.2.1]',
    },
    {
      name: 'NXDOMAIN',
      domain: 'no-such-domain.test',
      want: 'nxdomain: 550 5.1.2 domain no-such-domain.test does not exist',
    },
    {
      name: 'neither MX nor address records',
      domain: 'empty.test',
      want: 'nxdomain: 550 5.1.2 domain empty.test has no MX and no address records',
    },
    {
      name: 'SERVFAIL on the MX query',
      domain: 'servfail.test',
      want: 'temporary: 451 4.4.3 DNS temporary failure looking up MX of servfail.test: ESERVFAIL',
    },
    {
      name: 'MX hosts without addresses and an IP-literal MX are skipped',
      domain: 'dropped.test',
      want: 'hosts: 20 ok.dropped.test [192.0.2.20]',
    },
    {
      name: 'every MX host without an address',
      domain: 'allbad.test',
      want: 'temporary: 451 4.4.3 no MX host of allbad.test has an address',
    },
    {
      name: 'SERVFAIL on the MX host address query',
      domain: 'hostfail.test',
      want:
        'temporary: 451 4.4.3 DNS temporary failure looking up MX hosts of hostfail.test: ' +
        'ESERVFAIL',
    },
    {
      name: 'a domain literal is not routed',
      domain: '[192.0.2.1]',
      want: 'nxdomain: 550 5.1.2 "[192.0.2.1]" is not a domain name that can be routed by MX',
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const { mx } = resolver({ ipv6: c.ipv6 ?? false });
      assert.equal(describeRoute(await mx.resolve(c.domain)), c.want);
    });
  }

  it('a DNS timeout is temporary', async () => {
    dns.set('slow.test', { mx: [{ exchange: 'mx1.one.test', priority: 1 }], delayMs: 1_000 });
    const { mx } = resolver({}, 100);
    const r = await mx.resolve('slow.test');
    assert.equal(r.kind, 'temporary');
    assert.match(r.kind === 'temporary' ? formatReply(r.reply) : '', /^451 4\.4\.3 .*ETIMEOUT/);
  });
});

describe('MxResolver ordering', () => {
  before(() => {
    dns.set('order.test', {
      mx: [
        { exchange: 'mx-c.order.test', priority: 20 },
        { exchange: 'mx-a.order.test', priority: 10 },
        { exchange: 'mx-b.order.test', priority: 10 },
        { exchange: 'mx-d.order.test', priority: 5 },
      ],
    });
    for (const [i, h] of ['a', 'b', 'c', 'd'].entries()) {
      dns.set(`mx-${h}.order.test`, { a: [`192.0.2.${30 + i}`] });
    }
  });

  const names = (r: Route): string[] =>
    r.kind === 'hosts' ? r.hosts.map((h) => h.name.split('.')[0] ?? '') : [];

  it('ascending preference; the injected randomness orders equal preferences', async () => {
    const low = resolver({ random: () => 0 }).mx;
    const high = resolver({ random: () => 0.999 }).mx;
    assert.deepEqual(names(await low.resolve('order.test')), ['mx-d', 'mx-b', 'mx-a', 'mx-c']);
    assert.deepEqual(names(await high.resolve('order.test')), ['mx-d', 'mx-a', 'mx-b', 'mx-c']);
  });

  it('reshuffles equal preferences on every call, cached or not', async () => {
    const { mx, calls } = resolver();
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const order = names(await mx.resolve('order.test'));
      assert.equal(order[0], 'mx-d');
      assert.equal(order[3], 'mx-c');
      seen.add(order.join(' '));
    }
    assert.equal(seen.size, 2, 'both orders of the two preference-10 hosts appear');
    assert.equal(calls.get('mx'), 1, 'one DNS lookup served all calls');
  });
});

describe('MxResolver cache', () => {
  before(() => {
    dns.set('cached.test', { mx: [{ exchange: 'mx1.one.test', priority: 10 }] });
    dns.set('mx1.one.test', { a: ['192.0.2.1'] });
    dns.set('flaky.test', { servfail: true });
  });

  it('keeps a positive route for cacheMs, case-insensitively', async () => {
    let now = 1_000_000;
    const { mx, calls } = resolver({ cacheMs: 60_000, now: () => now });
    await mx.resolve('cached.test');
    await mx.resolve('CACHED.Test.');
    now += 59_999;
    await mx.resolve('cached.test');
    assert.equal(calls.get('mx'), 1);
    now += 2;
    await mx.resolve('cached.test');
    assert.equal(calls.get('mx'), 2, 'looked up again once expired');
  });

  it('keeps NXDOMAIN and Null MX for negativeCacheMs', async () => {
    let now = 0;
    const { mx, calls } = resolver({ negativeCacheMs: 30_000, now: () => now });
    await mx.resolve('missing.test');
    await mx.resolve('nullmx.test');
    now += 29_000;
    await mx.resolve('missing.test');
    await mx.resolve('nullmx.test');
    assert.equal(calls.get('mx'), 2);
    now += 2_000;
    await mx.resolve('missing.test');
    assert.equal(calls.get('mx'), 3);
  });

  it('never caches a temporary failure', async () => {
    const { mx, calls } = resolver();
    assert.equal((await mx.resolve('flaky.test')).kind, 'temporary');
    assert.equal((await mx.resolve('flaky.test')).kind, 'temporary');
    assert.equal(calls.get('mx'), 2);
  });

  it('concurrent calls for one domain share one lookup', async () => {
    const { mx, calls } = resolver();
    const routes = await Promise.all(
      ['cached.test', 'Cached.test', 'cached.test.', 'cached.test'].map((d) => mx.resolve(d)),
    );
    assert.equal(calls.get('mx'), 1);
    assert.equal(calls.get('a'), 1);
    assert.ok(routes.every((r) => describeRoute(r) === describeRoute(routes[0] as Route)));
  });

  it('forget drops one domain or all', async () => {
    const { mx, calls } = resolver();
    await mx.resolve('cached.test');
    mx.forget('CACHED.test');
    await mx.resolve('cached.test');
    assert.equal(calls.get('mx'), 2);
    mx.forget();
    await mx.resolve('cached.test');
    assert.equal(calls.get('mx'), 3);
  });

  it('hands out copies: changing a returned route does not change the cache', async () => {
    const { mx } = resolver();
    const first = await mx.resolve('cached.test');
    if (first.kind === 'hosts') first.hosts[0]?.addresses.push('203.0.113.1');
    assert.equal(
      describeRoute(await mx.resolve('cached.test')),
      'hosts: 10 mx1.one.test [192.0.2.1]',
    );
  });
});

describe('parseDnsServers', () => {
  const valid: [string, string[]][] = [
    ['127.0.0.1:5353', ['127.0.0.1:5353']],
    ['127.0.0.1:53,[::1]:5353', ['127.0.0.1:53', '[::1]:5353']],
    [' 10.0.0.1 , [2001:db8::53] ', ['10.0.0.1:53', '[2001:db8::53]:53']],
  ];
  for (const [input, want] of valid) {
    it(`accepts ${JSON.stringify(input)}`, () => assert.deepEqual(parseDnsServers(input), want));
  }

  const invalid = [
    '',
    '127.0.0.1:53,',
    'localhost:53',
    '::1:53',
    '[127.0.0.1]:53',
    '1.2.3:53',
    '127.0.0.1:0',
    '127.0.0.1:70000',
    '127.0.0.1:5x',
  ];
  for (const input of invalid) {
    it(`rejects ${JSON.stringify(input)} with E_CONFIG_DNS`, () => {
      assert.throws(
        () => parseDnsServers(input),
        (err: Error & { code?: string }) => {
          assert.equal(err.code, 'E_CONFIG_DNS');
          assert.match(err.message, /^GRIDPOST_DNS=.*expected HOST:PORT\[,HOST:PORT\.\.\.\]/);
          return true;
        },
      );
    });
  }

  it('gives servers that node Resolver accepts and uses', async () => {
    const lookup = createDnsLookup({ servers: parseDnsServers(dns.address), tries: 1 });
    assert.deepEqual(await lookup.resolve4('mx1.one.test'), ['192.0.2.1']);
  });
});
