/**
 * Three independent DKIM verifiers from Debian packages, each asking the test DNS server for
 * the public keys: dkimpy (python3-dkim), Mail::DKIM (libmail-dkim-perl) and OpenDKIM's
 * opendkim-testmsg (opendkim-tools). Each runs once over a batch of message files.
 *
 * OpenDKIM has no resolver setting in opendkim-testmsg: libopendkim asks glibc's resolver,
 * which reads /etc/resolv.conf and always uses port 53 (resolv.conf has no port syntax). So
 * the DNS server listens on port 53 of a private loopback address, and opendkim-testmsg runs
 * in a mount namespace of its own (`unshare -m`) where a resolv.conf naming that address is
 * bind-mounted over /etc/resolv.conf; the machine's resolver is untouched. That needs root
 * (CI and developer machines run as root). dkimpy and Mail::DKIM are pointed at the same
 * server through their resolver objects (address and port).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { TestDnsServer } from '../../src/testworld/dns-server.js';

const run = promisify(execFile);

// Debian's interpreters, not whatever python3 comes first on PATH (pyenv's has no dkim).
const PYTHON = '/usr/bin/python3';
const PERL = '/usr/bin/perl';
const OPENDKIM_TESTMSG = '/usr/sbin/opendkim-testmsg';
// A batch of a few hundred messages takes a few seconds; this only stops a hung verifier (ms).
const VERIFIER_TIMEOUT_MS = 120_000;
const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;
// Tries at other random loopback addresses when port 53 of one is taken.
const BIND_ATTEMPTS = 10;

/** Where the verifiers send their DNS questions. */
export interface VerifierDns {
  host: string;
  port: number;
}

/** One verifier's verdict on one signature (or, for OpenDKIM, on one message). */
export interface Verdict {
  pass: boolean;
  /** The verifier's own words: its result detail or error message. */
  detail: string;
}

/**
 * Starts the test DNS server on port 53 of a random 127.53.x.y address, as OpenDKIM needs
 * (see the file comment); random so that parallel runs on one machine do not collide.
 */
export async function startDnsForVerifiers(): Promise<TestDnsServer> {
  for (let attempt = 1; ; attempt++) {
    const octet = () => 1 + Math.floor(Math.random() * 254);
    const host = `127.53.${octet()}.${octet()}`;
    try {
      return await TestDnsServer.start({ host, port: 53 });
    } catch (err) {
      if (attempt >= BIND_ATTEMPTS) {
        throw new Error('cannot listen on port 53 of a loopback address (root needed)', {
          cause: err,
        });
      }
    }
  }
}

/** host and port of a started server. */
export function dnsOf(server: TestDnsServer): VerifierDns {
  const colon = server.address.lastIndexOf(':');
  return { host: server.address.slice(0, colon), port: Number(server.address.slice(colon + 1)) };
}

// dkimpy: every DKIM-Signature of each file verified by index (dkim.DKIM.verify(idx)), keys
// looked up through a dnspython Resolver aimed at our server. Prints one JSON line per file.
const DKIMPY = String.raw`
import json, logging, sys
import dkim, dns.resolver
host, port, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = [host]
resolver.port = port
def dnsfunc(name, timeout=5):
    answer = resolver.resolve(name.decode(), 'TXT', lifetime=timeout, raise_on_no_answer=False)
    for rrset in answer.response.answer:
        if rrset.rdtype == dns.rdatatype.TXT:
            return b''.join(list(rrset.items)[0].strings)
    return None
class Last(logging.Handler):
    def emit(self, record):
        self.text = record.getMessage()
for path in files:
    message = open(path, 'rb').read()
    verdicts = []
    idx = 0
    while True:
        log = logging.getLogger('dkimpy-%s-%d' % (path, idx))
        last = Last(); last.text = ''
        log.addHandler(last); log.setLevel(logging.DEBUG); log.propagate = False
        d = dkim.DKIM(message, logger=log)
        sigs = [h for h in d.headers if h[0].lower() == b'dkim-signature']
        if idx >= len(sigs):
            break
        try:
            ok = d.verify(idx=idx, dnsfunc=dnsfunc)
        except Exception as e:
            ok, last.text = False, '%s: %s' % (type(e).__name__, e)
        verdicts.append({'pass': bool(ok), 'detail': 'pass' if ok else last.text})
        idx += 1
    print(json.dumps({'file': path, 'verdicts': verdicts}))
`;

/** dkimpy's verdict on each DKIM-Signature of each file, top one first. */
export async function verifyWithDkimpy(
  files: string[],
  dns: VerifierDns,
): Promise<Map<string, Verdict[]>> {
  const args = ['-c', DKIMPY, dns.host, String(dns.port), ...files];
  const { stdout } = await run(PYTHON, args, execOptions());
  return perFileJson(stdout);
}

// Mail::DKIM: one Verifier per file, its signatures in header order, resolver aimed at our
// server through Mail::DKIM::DNS::resolver. Prints one JSON line per file.
const MAIL_DKIM = String.raw`
use strict; use warnings;
use JSON::PP; use Mail::DKIM::Verifier; use Mail::DKIM::DNS; use Net::DNS::Resolver;
my ($host, $port, @files) = @ARGV;
Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(
  nameservers => [$host], port => $port, recurse => 1, retry => 2, udp_timeout => 3,
  tcp_timeout => 3));
for my $file (@files) {
  open(my $fh, '<:raw', $file) or die "$file: $!";
  my $dkim = Mail::DKIM::Verifier->new();
  while (read($fh, my $chunk, 65536)) { $dkim->PRINT($chunk); }
  $dkim->CLOSE();
  my @verdicts = map { { pass => ($_->result eq 'pass' ? JSON::PP::true : JSON::PP::false),
    detail => $_->result_detail } } $dkim->signatures;
  print encode_json({ file => $file, verdicts => \@verdicts }), "\n";
}
`;

/** Mail::DKIM's verdict on each DKIM-Signature of each file, top one first. */
export async function verifyWithMailDkim(
  files: string[],
  dns: VerifierDns,
): Promise<Map<string, Verdict[]>> {
  const args = ['-e', MAIL_DKIM, dns.host, String(dns.port), ...files];
  const { stdout } = await run(PERL, args, execOptions());
  return perFileJson(stdout);
}

// For each file: opendkim-testmsg's exit status and its error text on one line. It prints
// nothing and exits 0 when the message verifies.
const OPENDKIM_LOOP = String.raw`
mount --bind "$1" /etc/resolv.conf || exit 97
shift
for f in "$@"; do
  err=$(${OPENDKIM_TESTMSG} < "$f" 2>&1)
  printf '%s\t%s\n' "$?" "$(printf '%s' "$err" | tr '\n\t' '  ')"
done
`;

/**
 * OpenDKIM's verdict on each file. It passes a message when any of its signatures verifies,
 * so test one signature at a time with onlySignature.
 */
export async function verifyWithOpendkim(
  files: string[],
  dns: VerifierDns,
): Promise<Map<string, Verdict>> {
  if (dns.port !== 53) throw new Error('opendkim-testmsg can only ask a server on port 53');
  const dir = mkdtempSync(join(tmpdir(), 'gridpost-opendkim-'));
  try {
    const resolvConf = join(dir, 'resolv.conf');
    writeFileSync(resolvConf, `nameserver ${dns.host}\noptions attempts:2 timeout:3\n`);
    const args = ['-m', '--propagation', 'private', 'sh', '-c', OPENDKIM_LOOP, 'sh'];
    const { stdout } = await run('unshare', [...args, resolvConf, ...files], execOptions());
    const lines = stdout.split('\n').filter((l) => l !== '');
    if (lines.length !== files.length) throw new Error(`opendkim loop said: ${stdout}`);
    return new Map(files.map((f, i) => [f, opendkimVerdict(lines[i]!)]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function opendkimVerdict(line: string): Verdict {
  const [status, text = ''] = line.split('\t');
  return { pass: status === '0', detail: status === '0' ? 'pass' : `exit ${status}: ${text}` };
}

/**
 * The message with only its index-th DKIM-Signature field (0 = the top one) and no other:
 * none of our signatures covers another, so each still verifies alone.
 */
export function onlySignature(message: Buffer, index: number): Buffer {
  const text = message.toString('latin1');
  const headerEnd = text.indexOf('\r\n\r\n');
  const header = text.slice(0, headerEnd === -1 ? text.length : headerEnd + 2);
  const fields = header.split(/\r\n(?![ \t])/).filter((f) => f !== '');
  let seen = -1;
  const kept = fields.filter((f) => !/^dkim-signature\s*:/i.test(f) || ++seen === index);
  if (seen < index) throw new Error(`the message has no DKIM-Signature number ${index}`);
  const rest = headerEnd === -1 ? '' : text.slice(headerEnd + 2);
  return Buffer.from(kept.map((f) => f + '\r\n').join('') + rest, 'latin1');
}

function execOptions() {
  return { timeout: VERIFIER_TIMEOUT_MS, maxBuffer: MAX_OUTPUT_BYTES, encoding: 'utf8' as const };
}

/** One JSON object per line, { file, verdicts }, into a map by file. */
function perFileJson(stdout: string): Map<string, Verdict[]> {
  const out = new Map<string, Verdict[]>();
  for (const line of stdout.split('\n')) {
    if (line.trim() === '') continue;
    const { file, verdicts } = JSON.parse(line) as { file: string; verdicts: Verdict[] };
    out.set(file, verdicts);
  }
  return out;
}
