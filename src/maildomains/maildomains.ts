/**
 * Maildomains: the sending domains of the installation, with their settings (default queue,
 * return-path domain, signing domain), domain keys (DKIM) and certified accounts (S/MIME).
 * Kept in the store, cached in memory for intake, changed through the API and the CLI. Every
 * change is durable (fsync'd) before it answers.
 */
import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import { GridpostError } from '../errors/catalogue.js';
import type { Committer } from '../spool/committer.js';
import type { Db } from '../spool/store.js';
import type { DnsLookup } from '../delivery/dns.js';
import { KeyFiles } from './key-files.js';
import { activation, expiredGrace, mayDelete, recordName, retirement } from './key-life.js';
import {
  MaildomainStore,
  type AccountRow,
  type DomainKeyRow,
  type MaildomainRow,
} from './store.js';
import {
  dkimRecord,
  generateKey,
  publishedMatches,
  readPrivateKey,
  splitRecord,
} from '../signing/dkim-key.js';
import type { DkimSigner } from '../signing/dkim-sign.js';
import {
  expiryWarning,
  readCredential,
  restoreCredential,
  type CredentialInput,
  type SmimeCredential,
} from '../signing/smime-credential.js';

export const CANONICALIZATIONS = [
  'relaxed/relaxed',
  'relaxed/simple',
  'simple/relaxed',
  'simple/simple',
] as const;
export type Canonicalization = (typeof CANONICALIZATIONS)[number];
export type KeyAlgorithm = DomainKeyRow['algorithm'];

/** What an operator sets on a maildomain (absent fields keep their value, null clears). */
export interface MaildomainInput {
  defaultQueue?: string | null;
  returnPathDomain?: string | null;
  signingDomain?: string | null;
  canonicalization?: Canonicalization;
}

/** A new domain key: generated (algorithm, bits) or imported (privateKey, PEM). */
export interface KeyInput {
  selector: string;
  algorithm?: 'rsa' | 'ed25519';
  bits?: number;
  privateKey?: string;
}

/** A domain key as the API shows it: never the private half. */
export interface KeyView {
  domain: string;
  selector: string;
  algorithm: KeyAlgorithm;
  bits: number;
  state: DomainKeyRow['state'];
  dns: { name: string; type: 'TXT'; value: string; strings: string[] };
  published: boolean;
  createdAt: string;
  activatedAt?: string;
  retireAt?: string;
  retiredAt?: string;
  checkedAt?: string;
  warnings: string[];
}

/** A certified account as the API shows it: never the private key. */
export interface AccountView {
  address: string;
  domain: string;
  subject: string;
  issuer: string;
  serial: string;
  fingerprint: string;
  notBefore: string;
  notAfter: string;
  state: 'valid' | 'expiring' | 'expired' | 'not-yet-valid';
  warning?: string;
}

/** A maildomain with its keys and accounts. */
export interface MaildomainView {
  domain: string;
  defaultQueue: string | null;
  returnPathDomain: string | null;
  signingDomain: string | null;
  canonicalization: Canonicalization;
  createdAt: string;
  updatedAt: string;
  keys: KeyView[];
  accounts: AccountView[];
  /** Whether its mail is DKIM-signed now, and by which keys. */
  signing: { domain: string; selectors: string[] };
  warnings: string[];
}

/** How intake signs one message, from its From address. */
export interface SigningPlan {
  maildomain: string;
  dkim: DkimSigner[];
  /** The certified account of the From address, if it has one. */
  account?: SmimeCredential;
}

export interface MaildomainOptions {
  keyGraceMs: number;
  certificateWarningMs: number;
  /** Whether the traffic policy has a queue of that name. */
  hasQueue: (name: string) => boolean;
  now?: () => number;
}

const DEFAULT_CANON: Canonicalization = 'relaxed/relaxed';
// RFC 1035 §2.3.1 labels (letters, digits, inner hyphens), at least two of them.
const DOMAIN =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/;
const SELECTOR =
  /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;
// A DKIM key below 1024 bits is refused by receivers (RFC 8301 §3.2); Gmail wants 1024 at least.
const WEAK_RSA_BITS = 2048;

/** The maildomains of the engine, cached for intake. */
export class Maildomains {
  private readonly store: MaildomainStore;
  private readonly files: KeyFiles;
  private domains = new Map<string, MaildomainRow>();
  private keys: DomainKeyRow[] = [];
  private accounts = new Map<string, { row: AccountRow; credential: SmimeCredential }>();
  private readonly privateKeys = new Map<string, KeyObject>();
  private readonly signerOf = new WeakMap<DomainKeyRow, DkimSigner>();
  private readonly now: () => number;

  constructor(
    db: Db,
    private readonly committer: Committer,
    dataDir: string,
    private readonly opts: MaildomainOptions,
    private readonly log: Logger,
  ) {
    this.store = new MaildomainStore(db);
    this.files = new KeyFiles(dataDir);
    this.now = opts.now ?? Date.now;
    this.reload();
  }

  /** How many maildomains there are. */
  get size(): number {
    return this.domains.size;
  }

  /** Every maildomain. */
  list(): MaildomainView[] {
    return [...this.domains.values()].map((d) => this.view(d));
  }

  /** One maildomain; E_NOT_FOUND when it is not configured. */
  get(domain: string): MaildomainView {
    return this.view(this.row(domain));
  }

  /** Whether a domain is a maildomain. */
  has(domain: string): boolean {
    return this.domains.has(domain.toLowerCase());
  }

  /** Every return-path domain a maildomain names (the bounce listener takes mail for them). */
  returnPathDomains(): string[] {
    return [...this.domains.values()].flatMap((d) => d.returnPathDomain ?? []);
  }

  /**
   * The maildomain of a From (or envelope) domain: itself, else the nearest parent domain that
   * is one (news.example.com sends as example.com, which DMARC's relaxed alignment accepts).
   */
  find(domain: string): MaildomainRow | undefined {
    const labels = domain.toLowerCase().split('.');
    for (let i = 0; i < labels.length - 1; i++) {
      const found = this.domains.get(labels.slice(i).join('.'));
      if (found) return found;
    }
    return undefined;
  }

  /** Adds or changes a maildomain. */
  async put(domain: string, input: MaildomainInput): Promise<MaildomainView> {
    const name = domainName(domain, 'domain');
    for (const key of ['returnPathDomain', 'signingDomain'] as const) {
      const v = input[key];
      if (v !== undefined && v !== null) domainName(v, key);
    }
    const old = this.domains.get(name);
    const at = this.now();
    const row: MaildomainRow = {
      domain: name,
      defaultQueue: pick(input.defaultQueue, old?.defaultQueue),
      returnPathDomain: pick(input.returnPathDomain, old?.returnPathDomain)?.toLowerCase() ?? null,
      signingDomain: pick(input.signingDomain, old?.signingDomain)?.toLowerCase() ?? null,
      canonicalization: input.canonicalization ?? old?.canonicalization ?? DEFAULT_CANON,
      createdAt: old?.createdAt ?? at,
      updatedAt: at,
    };
    if (row.defaultQueue !== null && !this.opts.hasQueue(row.defaultQueue)) {
      throw new GridpostError('E_UNKNOWN_QUEUE', `defaultQueue: no queue "${row.defaultQueue}"`, {
        path: 'defaultQueue',
      });
    }
    const signing = row.signingDomain;
    if (signing !== null && signing !== name && !this.domains.has(signing)) {
      const msg = `signingDomain: ${signing} is not a maildomain; add it (with its keys) first`;
      throw new GridpostError('E_VALIDATION', msg, { path: 'signingDomain' });
    }
    await this.committer.submit(() => this.store.putDomain(row));
    this.domains.set(name, row);
    return this.view(row);
  }

  /** Removes a maildomain with its keys and accounts (and their private key files). */
  async remove(domain: string): Promise<void> {
    const row = this.row(domain);
    const keyFiles = [
      ...this.keys.filter((k) => k.domain === row.domain).map((k) => k.keyFile),
      ...this.store.accounts().flatMap((a) => (a.domain === row.domain ? [a.keyFile] : [])),
    ];
    await this.committer.submit(() => this.store.deleteDomain(row.domain));
    for (const file of keyFiles) this.files.remove(file);
    this.reload();
  }

  /** Generates or imports a domain key; it is pending until DNS shows its record. */
  async addKey(domain: string, input: KeyInput): Promise<KeyView> {
    const row = this.row(domain);
    if (!SELECTOR.test(input.selector)) {
      throw new GridpostError('E_VALIDATION', `selector: "${input.selector}" is not a DNS label`, {
        path: 'selector',
      });
    }
    if (this.keys.some((k) => k.domain === row.domain && k.selector === input.selector)) {
      throw new GridpostError(
        'E_KEY_EXISTS',
        `${row.domain} already has selector ${input.selector}`,
        {
          path: 'selector',
        },
      );
    }
    const material = input.privateKey
      ? readPrivateKey(input.privateKey)
      : await generateKey(
          input.algorithm === 'ed25519' ? 'ed25519-sha256' : 'rsa-sha256',
          input.bits,
        );
    const key: DomainKeyRow = {
      domain: row.domain,
      selector: input.selector.toLowerCase(),
      algorithm: material.algorithm,
      bits: material.bits,
      record: dkimRecord(material.privateKey),
      keyFile: KeyFiles.domainKeyName(row.domain, input.selector),
      state: 'pending',
      createdAt: this.now(),
      activatedAt: null,
      retireAt: null,
      retiredAt: null,
      checkedAt: null,
      published: false,
    };
    this.files.write(key.keyFile, material.pem);
    await this.committer.submit(() => this.store.putKey(key));
    this.keys.push(key);
    return keyView(key);
  }

  /** The keys of a maildomain. */
  keysOf(domain: string): KeyView[] {
    const row = this.row(domain);
    return this.keys.filter((k) => k.domain === row.domain).map(keyView);
  }

  /** One key of a maildomain. */
  key(domain: string, selector: string): KeyView {
    return keyView(this.keyRow(domain, selector));
  }

  /**
   * Looks the key's record up in DNS; a pending key that DNS shows becomes active (and
   * replaces the active key of its algorithm, which starts its grace period).
   */
  async checkKey(domain: string, selector: string, dns: DnsLookup): Promise<KeyView> {
    const key = this.keyRow(domain, selector);
    const published = await lookupRecord(dns, key);
    const checked = { ...key, checkedAt: this.now(), published };
    const rows = published && key.state === 'pending' ? this.activate(checked) : [checked];
    await this.save(rows);
    return keyView(this.keyRow(domain, selector));
  }

  /**
   * Activates a pending key. Without force, only once DNS shows its record (a key that signs
   * before receivers can see it makes every signature fail).
   */
  async activateKey(domain: string, selector: string, force: boolean): Promise<KeyView> {
    const key = this.keyRow(domain, selector);
    if (!force && !key.published) {
      throw new GridpostError(
        'E_KEY_NOT_PUBLISHED',
        `${recordName(key)} has not shown this key yet; publish the TXT record, then check`,
        { path: 'selector' },
      );
    }
    await this.save(this.activate(key));
    return keyView(this.keyRow(domain, selector));
  }

  /** Stops an active key signing; it stays valid (published) for the grace period. */
  async retireKey(domain: string, selector: string): Promise<KeyView> {
    const key = this.keyRow(domain, selector);
    await this.save([retirement(key, this.now(), this.opts.keyGraceMs)]);
    return keyView(this.keyRow(domain, selector));
  }

  /** Deletes a pending or retired key and its private key file. */
  async deleteKey(domain: string, selector: string): Promise<void> {
    const key = this.keyRow(domain, selector);
    mayDelete(key);
    await this.committer.submit(() => this.store.deleteKey(key.domain, key.selector));
    this.files.remove(key.keyFile);
    this.keys = this.keys.filter((k) => k !== key);
  }

  /**
   * The periodic work: pending keys that DNS now shows become active; retiring keys past their
   * grace become retired and their private key files are deleted.
   */
  async tick(dns: DnsLookup): Promise<void> {
    for (const k of this.keys.filter((k) => k.state === 'pending')) {
      await this.checkKey(k.domain, k.selector, dns).catch((err: unknown) =>
        this.log.warn({ err, domain: k.domain, selector: k.selector }, 'key check failed'),
      );
    }
    const retired = expiredGrace(this.keys, this.now());
    if (retired.length === 0) return;
    await this.save(retired);
    for (const k of retired) this.files.remove(k.keyFile);
    this.log.info({ keys: retired.map((k) => recordName(k)) }, 'domain keys retired');
  }

  /** Imports a certified account's certificate and key (PEM or PKCS#12). */
  async putAccount(address: string, input: CredentialInput): Promise<AccountView> {
    const addr = address.toLowerCase();
    const domain = addr.slice(addr.lastIndexOf('@') + 1);
    const md = this.find(domain);
    if (!md) {
      throw new GridpostError('E_NOT_FOUND', `${domain} is not a maildomain; add it first`, {
        path: 'address',
      });
    }
    const credential = readCredential(input, addr, new Date(this.now()));
    const row = accountRow(credential, md.domain, this.now());
    const pem = credential.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    this.files.write(row.keyFile, pem);
    await this.committer.submit(() => this.store.putAccount(row));
    this.accounts.set(addr, { row, credential });
    return this.accountView(row);
  }

  /** Removes a certified account and its key file. */
  async removeAccount(address: string): Promise<void> {
    const found = this.accounts.get(address.toLowerCase());
    if (!found) throw new GridpostError('E_NOT_FOUND', `no certified account ${address}`);
    await this.committer.submit(() => this.store.deleteAccount(found.row.address));
    this.files.remove(found.row.keyFile);
    this.accounts.delete(found.row.address);
  }

  /** The certified accounts of a maildomain. */
  accountsOf(domain: string): AccountView[] {
    const row = this.row(domain);
    return [...this.accounts.values()]
      .filter((a) => a.row.domain === row.domain)
      .map((a) => this.accountView(a.row));
  }

  /** How intake signs a message from this address, or undefined when it is no maildomain's. */
  plan(fromAddress: string): SigningPlan | undefined {
    const domain = fromAddress.slice(fromAddress.lastIndexOf('@') + 1).toLowerCase();
    const md = this.find(domain);
    if (!md) return undefined;
    const account = this.accounts.get(fromAddress.toLowerCase())?.credential;
    return { maildomain: md.domain, dkim: this.signers(md), ...(account ? { account } : {}) };
  }

  /** Accounts whose certificates expire within the warning period, as sentences. */
  certificateWarnings(): string[] {
    return [...this.accounts.values()].flatMap((a) => this.accountView(a.row).warning ?? []);
  }

  /** The DKIM signers of a maildomain's mail: the active keys of its signing domain. */
  private signers(md: MaildomainRow): DkimSigner[] {
    const signingDomain = md.signingDomain ?? md.domain;
    const canonicalization = md.canonicalization as Canonicalization;
    return this.keys
      .filter((k) => k.domain === signingDomain && k.state === 'active')
      .flatMap((k) => {
        const privateKey = this.privateKey(k);
        if (!privateKey) return [];
        // The same frozen signer while nothing it holds changes: the signer compiles it once.
        const known = this.signerOf.get(k);
        if (known?.privateKey === privateKey && known.canonicalization === canonicalization)
          return [known];
        const { domain, selector, algorithm } = k;
        const signer = Object.freeze({ domain, selector, algorithm, privateKey, canonicalization });
        this.signerOf.set(k, signer);
        return [signer];
      });
  }

  private privateKey(k: DomainKeyRow): KeyObject | undefined {
    const id = `${k.domain}/${k.selector}`;
    let key = this.privateKeys.get(id);
    if (key) return key;
    try {
      key = this.files.read(k.keyFile);
    } catch (err) {
      this.log.error({ err, key: recordName(k) }, 'private key file unreadable; not signing');
      return undefined;
    }
    this.privateKeys.set(id, key);
    return key;
  }

  private activate(key: DomainKeyRow): DomainKeyRow[] {
    return activation(key, this.keys, this.now(), this.opts.keyGraceMs);
  }

  /** Writes changed key rows durably, then takes them into the cache. */
  private async save(rows: DomainKeyRow[]): Promise<void> {
    await this.committer.submit(() => rows.forEach((r) => this.store.putKey(r)));
    for (const r of rows) {
      const i = this.keys.findIndex((k) => k.domain === r.domain && k.selector === r.selector);
      if (i >= 0) this.keys[i] = r;
      if (r.state === 'retired') this.privateKeys.delete(`${r.domain}/${r.selector}`);
    }
  }

  private reload(): void {
    this.domains = new Map(this.store.domains().map((d) => [d.domain, d]));
    this.keys = this.store.keys();
    this.accounts = new Map();
    for (const row of this.store.accounts()) {
      try {
        const credential = restoreCredential(row, this.files.readPem(row.keyFile));
        this.accounts.set(row.address, { row, credential });
      } catch (err) {
        this.log.error({ err, address: row.address }, 'certified account unreadable; not signing');
      }
    }
  }

  private row(domain: string): MaildomainRow {
    const row = this.domains.get(domain.toLowerCase());
    if (!row) throw new GridpostError('E_NOT_FOUND', `${domain} is not a maildomain`);
    return row;
  }

  private keyRow(domain: string, selector: string): DomainKeyRow {
    const d = this.row(domain).domain;
    const key = this.keys.find((k) => k.domain === d && k.selector === selector.toLowerCase());
    if (!key) throw new GridpostError('E_NOT_FOUND', `${d} has no key with selector ${selector}`);
    return key;
  }

  private view(d: MaildomainRow): MaildomainView {
    const signingDomain = d.signingDomain ?? d.domain;
    const keys = this.keys.filter((k) => k.domain === d.domain).map(keyView);
    const active = this.keys.filter((k) => k.domain === signingDomain && k.state === 'active');
    const accounts = this.accountsOf(d.domain);
    const warnings = [
      ...(active.length === 0
        ? [`no active domain key: mail from ${d.domain} is not DKIM-signed`]
        : []),
      ...keys.flatMap((k) => k.warnings),
      ...accounts.flatMap((a) => a.warning ?? []),
    ];
    return {
      domain: d.domain,
      defaultQueue: d.defaultQueue,
      returnPathDomain: d.returnPathDomain,
      signingDomain: d.signingDomain,
      canonicalization: d.canonicalization as Canonicalization,
      createdAt: iso(d.createdAt)!,
      updatedAt: iso(d.updatedAt)!,
      keys,
      accounts,
      signing: { domain: signingDomain, selectors: active.map((k) => k.selector) },
      warnings,
    };
  }

  private accountView(row: AccountRow): AccountView {
    const now = this.now();
    const state: AccountView['state'] =
      now < row.notBefore
        ? 'not-yet-valid'
        : now > row.notAfter
          ? 'expired'
          : row.notAfter - now < this.opts.certificateWarningMs
            ? 'expiring'
            : 'valid';
    const credential = this.accounts.get(row.address)?.credential;
    const days = Math.ceil(this.opts.certificateWarningMs / 86_400_000);
    const warning = credential ? expiryWarning(credential, new Date(now), days) : null;
    return {
      address: row.address,
      domain: row.domain,
      subject: row.subject,
      issuer: row.issuer,
      serial: row.serial,
      fingerprint: row.fingerprint,
      notBefore: iso(row.notBefore)!,
      notAfter: iso(row.notAfter)!,
      state,
      ...(warning ? { warning } : {}),
    };
  }
}

/** The key as the API shows it. */
function keyView(k: DomainKeyRow): KeyView {
  const warnings =
    k.algorithm === 'rsa-sha256' && k.bits < WEAK_RSA_BITS
      ? [`${recordName(k)}: RSA-${k.bits} is weak; receivers expect 2048 bits (RFC 8301)`]
      : [];
  if (k.state === 'pending' && !k.published) {
    warnings.push(`${recordName(k)}: publish its TXT record; it signs once DNS shows it`);
  }
  return {
    domain: k.domain,
    selector: k.selector,
    algorithm: k.algorithm,
    bits: k.bits,
    state: k.state,
    dns: { name: recordName(k), type: 'TXT', value: k.record, strings: splitRecord(k.record) },
    published: k.published,
    createdAt: iso(k.createdAt)!,
    ...optionalIso('activatedAt', k.activatedAt),
    ...optionalIso('retireAt', k.retireAt),
    ...optionalIso('retiredAt', k.retiredAt),
    ...optionalIso('checkedAt', k.checkedAt),
    warnings,
  };
}

/**
 * Whether DNS shows the key's record (any TXT at its name matching our public key); a
 * temporary failure (SERVFAIL, timeout) is E_DNS_LOOKUP, not "not published".
 */
async function lookupRecord(dns: DnsLookup, key: DomainKeyRow): Promise<boolean> {
  try {
    const txts = await dns.resolveTxt(recordName(key));
    return txts.some((strings) => publishedMatches(strings.join(''), key.record));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTFOUND' || code === 'ENODATA') return false;
    const msg = `looking up ${recordName(key)} failed (${code ?? String(err)}); try again`;
    throw new GridpostError('E_DNS_LOOKUP', msg, { path: 'selector', cause: err });
  }
}

function accountRow(c: SmimeCredential, domain: string, at: number): AccountRow {
  return {
    address: c.address,
    domain,
    certificatePem: c.certificatePem,
    chainPem: c.chainPem.join(''),
    keyFile: KeyFiles.accountKeyName(c.address),
    subject: c.info.subject,
    issuer: c.info.issuer,
    serial: c.info.serial,
    fingerprint: c.info.fingerprint,
    notBefore: c.info.notBefore.getTime(),
    notAfter: c.info.notAfter.getTime(),
    createdAt: at,
  };
}

/** A domain name of two or more LDH labels, lower-cased; E_VALIDATION otherwise. */
function domainName(value: string, path: string): string {
  const name = value.toLowerCase();
  if (!DOMAIN.test(name)) {
    throw new GridpostError('E_VALIDATION', `${path}: "${value}" is not a domain name`, { path });
  }
  return name;
}

function pick<T>(given: T | null | undefined, old: T | null | undefined): T | null {
  return given === undefined ? (old ?? null) : given;
}

function iso(ms: number | null): string | undefined {
  return ms === null ? undefined : new Date(ms).toISOString();
}

function optionalIso<K extends string>(key: K, ms: number | null): { [P in K]?: string } {
  return ms === null ? {} : ({ [key]: new Date(ms).toISOString() } as { [P in K]?: string });
}
