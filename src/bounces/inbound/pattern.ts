/**
 * Patterns written as lists: each alternative on its own line of source, so that the fixed
 * texts of a format read (and diff) as data.
 */

/** `before(?:a|b|...)after`, case-insensitive unless flags say otherwise. */
export function anyOf(
  alternatives: string[],
  {
    before = '',
    after = '',
    flags = 'i',
  }: { before?: string; after?: string; flags?: string } = {},
): RegExp {
  return new RegExp(`${before}(?:${alternatives.join('|')})${after}`, flags);
}

/** The start of a line of a report, after any indentation. */
export const LINE_START = String.raw`^\s*`;
