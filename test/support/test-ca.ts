/**
 * A throw-away certificate authority made with the real `openssl` CLI, for the S/MIME tests
 * and bench: a root CA, an intermediate CA, and signer certificates issued by the
 * intermediate (valid, expired, not yet valid, for another address, with an ECDSA key, with
 * an Ed25519 key, with a 1024-bit key, for TLS servers only, with a key usage that does not
 * allow signing), plus a password-protected PKCS#12 bundle. Dates in
 * the past and future come from `openssl ca -startdate/-enddate`, so no clock is faked.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** One issued certificate with its key, as PEM text, and the files they live in. */
export interface TestSigner {
  certPem: string;
  keyPem: string;
  certFile: string;
  keyFile: string;
}

/** What a signer certificate should look like. */
interface SignerSpec {
  name: string;
  email: string;
  key?: 'rsa2048' | 'rsa1024' | 'ec' | 'ed25519';
  /** openssl ca date format YYYYMMDDHHMMSSZ; default: from an hour ago. */
  start?: string;
  /** Default: in 365 days. */
  end?: string;
  eku?: string;
  /** Default: digitalSignature, nonRepudiation, keyEncipherment. */
  keyUsage?: string;
}

/** The CA files and every signer the tests use. */
export interface TestCa {
  dir: string;
  /** The root: what a verifier trusts (-CAfile). */
  caFile: string;
  caPem: string;
  /** The intermediate that issues the signers; a signature must carry it. */
  intermediatePem: string;
  alice: TestSigner;
  expired: TestSigner;
  notYetValid: TestSigner;
  bob: TestSigner;
  ec: TestSigner;
  ed25519: TestSigner;
  encipherOnly: TestSigner;
  small: TestSigner;
  tlsOnly: TestSigner;
  /** alice's certificate, key and the intermediate as PKCS#12 (AES-256, PBKDF2), password below. */
  aliceP12: Buffer;
  p12Password: string;
  remove(): void;
}

const CA_CONFIG = `[ ca ]
default_ca = test_ca
[ test_ca ]
dir = DIR
database = DIR/index.txt
new_certs_dir = DIR/issued
serial = DIR/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[ anything ]
commonName = supplied
emailAddress = optional
organizationName = optional
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
`;

async function openssl(dir: string, args: string[]): Promise<string> {
  const { stdout } = await run('openssl', args, { cwd: dir, encoding: 'utf8' });
  return stdout;
}

async function newKey(dir: string, file: string, kind: SignerSpec['key'] = 'rsa2048') {
  const algo =
    kind === 'ec'
      ? ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1']
      : kind === 'ed25519'
        ? ['-algorithm', 'ED25519']
        : ['-algorithm', 'RSA', '-pkeyopt', `rsa_keygen_bits:${kind === 'rsa1024' ? 1024 : 2048}`];
  await openssl(dir, ['genpkey', ...algo, '-out', file]);
}

/** openssl ca date format (YYYYMMDDHHMMSSZ) for now plus the given number of days. */
export function caDate(days: number, from = new Date()): string {
  const d = new Date(from.getTime() + days * 86_400_000);
  return d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
}

function signerExtensions(spec: SignerSpec): string {
  return [
    '[ signer ]',
    'basicConstraints = CA:FALSE',
    `keyUsage = critical, ${spec.keyUsage ?? 'digitalSignature, nonRepudiation, keyEncipherment'}`,
    `extendedKeyUsage = ${spec.eku ?? 'emailProtection'}`,
    `subjectAltName = email:${spec.email}`,
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid,issuer',
    '',
  ].join('\n');
}

/** Issues one certificate from the intermediate CA. */
async function issue(dir: string, spec: SignerSpec): Promise<TestSigner> {
  const keyFile = join(dir, `${spec.name}.key`);
  const certFile = join(dir, `${spec.name}.pem`);
  const extFile = join(dir, `${spec.name}.ext`);
  writeFileSync(extFile, signerExtensions(spec));
  await newKey(dir, keyFile, spec.key);
  const subj = `/CN=${spec.name}/O=Gridpost Test/emailAddress=${spec.email}`;
  await request(dir, spec.name, subj);
  await openssl(dir, [
    ...['ca', '-batch', '-config', 'ca.cnf', '-notext', '-md', 'sha256'],
    ...['-cert', 'intermediate.pem', '-keyfile', 'intermediate.key'],
    ...['-startdate', spec.start ?? caDate(-1 / 24), '-enddate', spec.end ?? caDate(365)],
    ...['-extfile', extFile, '-extensions', 'signer'],
    ...['-in', `${spec.name}.csr`, '-out', certFile],
  ]);
  return {
    certPem: readFileSync(certFile, 'utf8'),
    keyPem: readFileSync(keyFile, 'utf8'),
    certFile,
    keyFile,
  };
}

async function makeAuthorities(dir: string): Promise<void> {
  mkdirSync(join(dir, 'issued'));
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'serial'), '1000\n');
  writeFileSync(join(dir, 'ca.cnf'), CA_CONFIG.replaceAll('DIR', dir));
  // Both start an hour back, like the signers, so a clock read before they were made is in.
  const dates = ['-startdate', caDate(-1 / 24), '-enddate', caDate(3650)];
  const ca = ['ca', '-batch', '-config', 'ca.cnf', '-notext', '-extensions', 'v3_ca', ...dates];
  await newKey(dir, 'ca.key');
  await request(dir, 'ca', '/CN=Gridpost Test Root/O=Gridpost Test');
  await openssl(dir, [...ca, '-selfsign', '-keyfile', 'ca.key', '-in', 'ca.csr', '-out', 'ca.pem']);
  await newKey(dir, 'intermediate.key');
  await request(dir, 'intermediate', '/CN=Gridpost Test Intermediate/O=Gridpost Test');
  await openssl(dir, [
    ...[...ca, '-cert', 'ca.pem', '-keyfile', 'ca.key'],
    ...['-in', 'intermediate.csr', '-out', 'intermediate.pem'],
  ]);
}

async function request(dir: string, name: string, subject: string): Promise<void> {
  await openssl(dir, [
    'req',
    '-new',
    '-key',
    `${name}.key`,
    '-subj',
    subject,
    '-out',
    `${name}.csr`,
  ]);
}

/** Makes the whole CA in a fresh temporary directory (a few seconds: nine keys). */
export async function makeTestCa(): Promise<TestCa> {
  const dir = mkdtempSync(join(tmpdir(), 'gridpost-ca-'));
  await makeAuthorities(dir);
  const alice = await issue(dir, { name: 'alice', email: 'alice@example.org' });
  const expired = await issue(dir, {
    ...{ name: 'expired', email: 'alice@example.org' },
    ...{ start: caDate(-400), end: caDate(-35) },
  });
  const notYetValid = await issue(dir, {
    ...{ name: 'future', email: 'alice@example.org' },
    ...{ start: caDate(10), end: caDate(400) },
  });
  const bob = await issue(dir, { name: 'bob', email: 'bob@example.net' });
  const ec = await issue(dir, { name: 'ec', email: 'alice@example.org', key: 'ec' });
  const ed25519 = await issue(dir, { name: 'ed', email: 'alice@example.org', key: 'ed25519' });
  const encipherOnly = await issue(dir, {
    name: 'encipher',
    email: 'alice@example.org',
    keyUsage: 'keyEncipherment',
  });
  const small = await issue(dir, { name: 'small', email: 'alice@example.org', key: 'rsa1024' });
  const tlsOnly = await issue(dir, { name: 'tls', email: 'alice@example.org', eku: 'serverAuth' });
  const p12Password = 'correct horse battery staple';
  await openssl(dir, [
    ...['pkcs12', '-export', '-in', alice.certFile, '-inkey', alice.keyFile],
    ...['-certfile', 'intermediate.pem', '-name', 'alice', '-out', 'alice.p12'],
    ...['-passout', `pass:${p12Password}`],
  ]);
  return {
    dir,
    caFile: join(dir, 'ca.pem'),
    caPem: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    intermediatePem: readFileSync(join(dir, 'intermediate.pem'), 'utf8'),
    ...{ alice, expired, notYetValid, bob, ec, ed25519, encipherOnly, small, tlsOnly },
    p12Password,
    aliceP12: readFileSync(join(dir, 'alice.p12')),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** What openssl said of one signed message: verified or not, the content, its complaint. */
export interface OpensslVerdict {
  ok: boolean;
  content: Buffer;
  stderr: string;
}

/** openssl smime or cms -verify of a signed message file against the test root. */
export async function opensslVerify(
  tool: 'smime' | 'cms',
  file: string,
  ca: TestCa,
): Promise<OpensslVerdict> {
  const out = `${file}.${tool}.out`;
  const purpose = tool === 'smime' ? ['-purpose', 'smimesign'] : [];
  const args = [tool, '-verify', '-CAfile', ca.caFile, ...purpose, '-in', file, '-out', out];
  try {
    const { stderr } = await run('openssl', args, { encoding: 'utf8' });
    return { ok: true, content: readFileSync(out), stderr };
  } catch (err) {
    return {
      ok: false,
      content: Buffer.alloc(0),
      stderr: String((err as { stderr?: string }).stderr),
    };
  }
}
