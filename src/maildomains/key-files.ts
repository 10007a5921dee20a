/**
 * Private keys on disk: one PEM file per domain key or certified account under
 * <dataDir>/keys, the folder 0700 and every file 0600 from its creation, written to a
 * temporary name, fsync'd and renamed so that a crash leaves either the old file or the new
 * one. Nothing else in the engine reads these files, and no API answer includes them.
 */
import { createHash, createPrivateKey, type KeyObject } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

/** Reads and writes the private key files of one data directory. */
export class KeyFiles {
  readonly dir: string;

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'keys');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  /** The file name of a domain key (a name, not a path: rows keep names only). */
  static domainKeyName(domain: string, selector: string): string {
    return `dkim-${safe(domain)}-${safe(selector)}.pem`;
  }

  /** The file name of a certified account's key. */
  static accountKeyName(address: string): string {
    const digest = createHash('sha256').update(address.toLowerCase()).digest('hex');
    return `smime-${digest.slice(0, 24)}.pem`;
  }

  /** Writes a PEM private key durably with mode 0600. */
  write(name: string, pem: string): void {
    const path = join(this.dir, name);
    const tmp = `${path}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, pem);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    const dirFd = openSync(this.dir, 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  }

  /** Loads a private key file. */
  read(name: string): KeyObject {
    return createPrivateKey(readFileSync(join(this.dir, name), 'utf8'));
  }

  /** A private key file's PEM text. */
  readPem(name: string): string {
    return readFileSync(join(this.dir, name), 'utf8');
  }

  /** Deletes a key file (a retired key, a removed account); absent files are fine. */
  remove(name: string): void {
    rmSync(join(this.dir, name), { force: true });
  }
}

/** A file-name-safe form of a domain or selector (they are already [a-z0-9.-_]). */
function safe(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9._-]/g, '_');
}
