/**
 * The maildomain tables: sending domains, their domain keys (DKIM) and certified accounts
 * (S/MIME). Rows hold public material and metadata only; private keys live in files of their
 * own (key-files.ts), so that no query, export or API answer can ever carry one.
 */
import type { Statement } from 'better-sqlite3';
import type { Db } from '../spool/store.js';

/** A sending domain's settings. */
export interface MaildomainRow {
  domain: string;
  /** The queue its messages go to when the injection names none. */
  defaultQueue: string | null;
  /** The envelope-sender (bounce) domain of its mail; SPF and the bounce MX are checked there. */
  returnPathDomain: string | null;
  /** The maildomain whose keys sign its mail (a parent domain, say); itself when null. */
  signingDomain: string | null;
  canonicalization: string;
  createdAt: number;
  updatedAt: number;
}

/** The life of a domain key: published and waiting, signing, replaced, gone. */
export type KeyState = 'pending' | 'active' | 'retiring' | 'retired';

/** A domain key (DKIM): public half and state; the private half is in keyFile. */
export interface DomainKeyRow {
  domain: string;
  selector: string;
  algorithm: 'rsa-sha256' | 'ed25519-sha256';
  bits: number;
  /** The DNS TXT value to publish at <selector>._domainkey.<domain>. */
  record: string;
  keyFile: string;
  state: KeyState;
  createdAt: number;
  activatedAt: number | null;
  /** Retiring: the end of the grace period, when the key becomes retired. */
  retireAt: number | null;
  retiredAt: number | null;
  /** The last DNS lookup of the record, and whether it showed our key. */
  checkedAt: number | null;
  published: boolean;
}

/** A certified account (S/MIME): a sender address, its certificate and where its key is. */
export interface AccountRow {
  address: string;
  domain: string;
  certificatePem: string;
  chainPem: string;
  keyFile: string;
  subject: string;
  issuer: string;
  serial: string;
  fingerprint: string;
  notBefore: number;
  notAfter: number;
  createdAt: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS maildomains (domain TEXT PRIMARY KEY, default_queue TEXT,
  return_path_domain TEXT, signing_domain TEXT, canonicalization TEXT NOT NULL,
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS domain_keys (domain TEXT NOT NULL, selector TEXT NOT NULL,
  algorithm TEXT NOT NULL, bits INTEGER NOT NULL, record TEXT NOT NULL, key_file TEXT NOT NULL,
  state TEXT NOT NULL, created_at INTEGER NOT NULL, activated_at INTEGER, retire_at INTEGER,
  retired_at INTEGER, checked_at INTEGER, published INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (domain, selector));
CREATE TABLE IF NOT EXISTS certified_accounts (address TEXT PRIMARY KEY, domain TEXT NOT NULL,
  certificate_pem TEXT NOT NULL, chain_pem TEXT NOT NULL, key_file TEXT NOT NULL,
  subject TEXT NOT NULL, issuer TEXT NOT NULL, serial TEXT NOT NULL, fingerprint TEXT NOT NULL,
  not_before INTEGER NOT NULL, not_after INTEGER NOT NULL, created_at INTEGER NOT NULL);
`;

const DOMAIN_COLS = `domain, default_queue AS defaultQueue, return_path_domain AS returnPathDomain,
  signing_domain AS signingDomain, canonicalization, created_at AS createdAt,
  updated_at AS updatedAt`;
const KEY_COLS = `domain, selector, algorithm, bits, record, key_file AS keyFile, state,
  created_at AS createdAt, activated_at AS activatedAt, retire_at AS retireAt,
  retired_at AS retiredAt, checked_at AS checkedAt, published`;
const ACCOUNT_COLS = `address, domain, certificate_pem AS certificatePem, chain_pem AS chainPem,
  key_file AS keyFile, subject, issuer, serial, fingerprint, not_before AS notBefore,
  not_after AS notAfter, created_at AS createdAt`;

/** Reads and writes the maildomain tables (callers run writes inside a commit). */
export class MaildomainStore {
  private readonly stmt: Record<string, Statement>;

  constructor(db: Db) {
    db.exec(SCHEMA);
    this.stmt = {
      domains: db.prepare(`SELECT ${DOMAIN_COLS} FROM maildomains ORDER BY domain`),
      putDomain: db.prepare(`INSERT INTO maildomains (domain, default_queue, return_path_domain,
        signing_domain, canonicalization, created_at, updated_at)
        VALUES (@domain, @defaultQueue, @returnPathDomain, @signingDomain, @canonicalization,
          @createdAt, @updatedAt)
        ON CONFLICT (domain) DO UPDATE SET default_queue = excluded.default_queue,
          return_path_domain = excluded.return_path_domain,
          signing_domain = excluded.signing_domain,
          canonicalization = excluded.canonicalization, updated_at = excluded.updated_at`),
      delDomain: db.prepare('DELETE FROM maildomains WHERE domain = ?'),
      keys: db.prepare(`SELECT ${KEY_COLS} FROM domain_keys ORDER BY domain, created_at`),
      putKey: db.prepare(`INSERT OR REPLACE INTO domain_keys (domain, selector, algorithm, bits,
        record, key_file, state, created_at, activated_at, retire_at, retired_at, checked_at,
        published) VALUES (@domain, @selector, @algorithm, @bits, @record, @keyFile, @state,
        @createdAt, @activatedAt, @retireAt, @retiredAt, @checkedAt, @published)`),
      delKey: db.prepare('DELETE FROM domain_keys WHERE domain = ? AND selector = ?'),
      delKeys: db.prepare('DELETE FROM domain_keys WHERE domain = ?'),
      accounts: db.prepare(`SELECT ${ACCOUNT_COLS} FROM certified_accounts ORDER BY address`),
      putAccount: db.prepare(`INSERT OR REPLACE INTO certified_accounts (address, domain,
        certificate_pem, chain_pem, key_file, subject, issuer, serial, fingerprint, not_before,
        not_after, created_at) VALUES (@address, @domain, @certificatePem, @chainPem, @keyFile,
        @subject, @issuer, @serial, @fingerprint, @notBefore, @notAfter, @createdAt)`),
      delAccount: db.prepare('DELETE FROM certified_accounts WHERE address = ?'),
      delAccounts: db.prepare('DELETE FROM certified_accounts WHERE domain = ?'),
    };
  }

  /** Every maildomain, by name. */
  domains(): MaildomainRow[] {
    return this.stmt.domains!.all() as MaildomainRow[];
  }

  putDomain(row: MaildomainRow): void {
    this.stmt.putDomain!.run(row);
  }

  /** Deletes a maildomain with its keys and accounts (their files are the caller's). */
  deleteDomain(domain: string): void {
    this.stmt.delDomain!.run(domain);
    this.stmt.delKeys!.run(domain);
    this.stmt.delAccounts!.run(domain);
  }

  /** Every domain key, by domain then age. */
  keys(): DomainKeyRow[] {
    const rows = this.stmt.keys!.all() as (Omit<DomainKeyRow, 'published'> & {
      published: number;
    })[];
    return rows.map((r) => ({ ...r, published: r.published === 1 }));
  }

  putKey(row: DomainKeyRow): void {
    this.stmt.putKey!.run({ ...row, published: row.published ? 1 : 0 });
  }

  deleteKey(domain: string, selector: string): void {
    this.stmt.delKey!.run(domain, selector);
  }

  /** Every certified account, by address. */
  accounts(): AccountRow[] {
    return this.stmt.accounts!.all() as AccountRow[];
  }

  putAccount(row: AccountRow): void {
    this.stmt.putAccount!.run(row);
  }

  deleteAccount(address: string): void {
    this.stmt.delAccount!.run(address);
  }
}
