/**
 * Secret keys kept in the data directory (mode 0600), made on first use: the keys that sign
 * unsubscribe links and return paths. They never leave the data directory and are never
 * returned by the API; deleting one invalidates everything it signed.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The 32-byte key in dataDir/<name>, made when missing. */
export function secretKey(dataDir: string, name: string): Buffer {
  const file = join(dataDir, name);
  if (!existsSync(file)) {
    // 'wx': two engines starting on one directory cannot both write a key.
    try {
      writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
}
