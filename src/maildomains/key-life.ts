/**
 * The life of a domain key, as pure rules: a new key is pending until DNS shows it, then it
 * signs (active); the key it replaces stays published and valid for a grace period (retiring),
 * so that mail signed with it and still in flight verifies, then it is retired and its private
 * half deleted. Rotation is only this: add a key of the same algorithm; once DNS shows it, it
 * takes over.
 */
import { GridpostError } from '../errors/catalogue.js';
import type { DomainKeyRow } from './store.js';

/** The rows a key's activation changes: itself, and the active key of its algorithm it replaces. */
export function activation(
  key: DomainKeyRow,
  all: DomainKeyRow[],
  now: number,
  graceMs: number,
): DomainKeyRow[] {
  if (key.state !== 'pending') {
    throw new GridpostError('E_KEY_STATE', `key ${key.selector} is ${key.state}, not pending`, {
      path: 'selector',
    });
  }
  const replaced = all.filter(
    (k) =>
      k.domain === key.domain &&
      k.algorithm === key.algorithm &&
      k.state === 'active' &&
      k.selector !== key.selector,
  );
  return [
    { ...key, state: 'active', activatedAt: now },
    ...replaced.map((k) => ({ ...k, state: 'retiring' as const, retireAt: now + graceMs })),
  ];
}

/** An active key taken out of signing by hand: it stays published for the grace period. */
export function retirement(key: DomainKeyRow, now: number, graceMs: number): DomainKeyRow {
  if (key.state !== 'active') {
    throw new GridpostError('E_KEY_STATE', `key ${key.selector} is ${key.state}, not active`, {
      path: 'selector',
    });
  }
  return { ...key, state: 'retiring', retireAt: now + graceMs };
}

/** Retiring keys whose grace period is over, as retired rows. */
export function expiredGrace(all: DomainKeyRow[], now: number): DomainKeyRow[] {
  return all
    .filter((k) => k.state === 'retiring' && k.retireAt !== null && k.retireAt <= now)
    .map((k) => ({ ...k, state: 'retired' as const, retiredAt: now }));
}

/** Whether a key may be deleted: only when it neither signs nor must still verify. */
export function mayDelete(key: DomainKeyRow): void {
  if (key.state === 'active' || key.state === 'retiring') {
    const what = key.state === 'active' ? 'signs' : 'must stay valid until its grace ends';
    throw new GridpostError('E_KEY_STATE', `key ${key.selector} ${what}; retire it first`, {
      path: 'selector',
    });
  }
}

/** The DNS name a key's record is published at. */
export function recordName(key: { domain: string; selector: string }): string {
  return `${key.selector}._domainkey.${key.domain}`;
}
