// The values of a maildomain's DNS status: what we expect to be published, and per record
// what was found and what to do about it.

/** One DKIM key of the maildomain, with the TXT value it wants at <selector>._domainkey. */
export interface DnsKeyExpectation {
  selector: string;
  algorithm: 'rsa-sha256' | 'ed25519-sha256';
  /** The TXT value we want published, "v=DKIM1; k=rsa; p=...". */
  record: string;
  /** The key's life-cycle state; "retired" means it need not be published any more. */
  state: string;
}

/** One egress source that sends the maildomain's mail: its address and HELO name. */
export interface DnsSourceExpectation {
  name: string;
  address: string;
  helo: string;
}

/** What a maildomain needs in DNS, as the maildomain store and the engine's sources know it. */
export interface DnsExpectation {
  /** The maildomain, e.g. example.com: the domain of the From address. */
  domain: string;
  /**
   * The envelope-sender (bounce) domain, e.g. bounces.example.com. SPF is checked here, and
   * only here: receivers evaluate SPF on the MAIL FROM domain (RFC 7208 §2.4), never on the
   * From domain, which enters only through DMARC alignment. Absent: the maildomain itself.
   */
  returnPathDomain?: string;
  /** The host the return-path domain's MX (or CNAME) must point at. */
  bounceHost?: string;
  keys: DnsKeyExpectation[];
  /** Every address must pass SPF; every PTR must give the HELO name and confirm (FCrDNS). */
  sources: DnsSourceExpectation[];
}

/** The kinds of record a maildomain needs. */
export type DnsRecordKind = 'spf' | 'dkim' | 'dmarc' | 'return-path' | 'ptr';

/**
 * How one record stands. "error" is a temporary DNS failure (SERVFAIL, timeout, refused):
 * the record's state is unknown, which is not the same as missing.
 */
export type DnsCheckStatus = 'ok' | 'missing' | 'wrong' | 'error';

/** One needed record: where it was looked up, what should be there, what is, and the fix. */
export interface DnsRecordStatus {
  kind: DnsRecordKind;
  /** The DNS name looked up. */
  name: string;
  status: DnsCheckStatus;
  /** What should be published: the exact record text where we can give it. */
  expected: string;
  /** What is published (TXT values with their strings joined, or "MX 10 host" and such). */
  found: string[];
  /** Why it is ok, wrong or missing, in one sentence. */
  detail: string;
  /** What to do; empty when the record is ok. */
  fix: string;
  selector?: string;
  source?: string;
}
