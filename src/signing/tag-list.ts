// Tag=value lists, the syntax of DKIM key records (RFC 6376 §3.2) and DMARC records
// (RFC 7489 §6.4): "v=DKIM1; k=rsa; p=MIIB...".

/** A parsed tag list in its order, or the reason it is not one. */
export type TagList =
  | { ok: true; tags: [string, string][]; get(name: string): string | undefined }
  | { ok: false; error: string };

/**
 * Parses a tag list. Whitespace around names and values is dropped (FWS, RFC 6376 §3.2); an
 * empty spec (a trailing ";") is allowed; a spec without "=" or a repeated name makes the whole
 * list invalid. Names keep their case: DKIM tags are case-sensitive.
 */
export function parseTagList(text: string): TagList {
  const tags: [string, string][] = [];
  for (const spec of text.split(';')) {
    if (spec.trim() === '') continue;
    const eq = spec.indexOf('=');
    if (eq < 0) return { ok: false, error: `"${spec.trim()}" has no "="` };
    const name = spec.slice(0, eq).trim();
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(name)) return { ok: false, error: `bad tag "${name}"` };
    if (tags.some(([n]) => n === name)) return { ok: false, error: `tag ${name}= appears twice` };
    tags.push([name, spec.slice(eq + 1).trim()]);
  }
  const map = new Map(tags);
  return { ok: true, tags, get: (name) => map.get(name) };
}
