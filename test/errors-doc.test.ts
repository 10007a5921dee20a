/** The error catalogue in code and docs/errors.md list the same codes with the same statuses. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { ERROR_CODES } from '../src/errors/catalogue.js';

it('docs/errors.md documents exactly the codes of the catalogue, with their HTTP status', () => {
  const doc = readFileSync('docs/errors.md', 'utf8');
  const rows = [...doc.matchAll(/^\| `(E_[A-Z_]+)` \| (–|\d{3}) \|/gm)];
  const documented = new Map(rows.map((m) => [m[1]!, m[2] === '–' ? 0 : Number(m[2])]));
  const inCode = new Map(Object.entries(ERROR_CODES).map(([code, v]) => [code, v.status]));
  assert.deepEqual([...documented.keys()].sort(), [...inCode.keys()].sort());
  for (const [code, status] of inCode) assert.equal(documented.get(code), status, code);
});
