/**
 * Header-style field blocks, the syntax of message/delivery-status (RFC 3464 §2.1) and
 * message/feedback-report (RFC 5965 §3.1): "Name: value" lines, folded continuation lines
 * that start with white space, and blocks separated by blank lines.
 */

/** One block of fields, names lower-cased, in order, repeated names kept. */
export type FieldBlock = Array<[name: string, value: string]>;

const FIELD = /^([!-9;-~]+)[ \t]*:[ \t]*(.*)$/;

/** Parses text into blocks of fields; lines that are neither field nor folding are skipped. */
export function parseFieldBlocks(text: string): FieldBlock[] {
  const blocks: FieldBlock[] = [];
  let block: FieldBlock = [];
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '') {
      if (block.length > 0) blocks.push(block);
      block = [];
      continue;
    }
    const last = block[block.length - 1];
    if ((line[0] === ' ' || line[0] === '\t') && last) {
      last[1] = `${last[1]} ${line.trim()}`.trim();
      continue;
    }
    const m = FIELD.exec(line);
    if (m) block.push([m[1]!.toLowerCase(), m[2]!.trim()]);
  }
  if (block.length > 0) blocks.push(block);
  return blocks;
}

/** The first value of a field in a block. */
export function field(block: FieldBlock, name: string): string | undefined {
  return block.find(([n]) => n === name)?.[1];
}

/** Every value of a field that may repeat (Original-Rcpt-To, Reported-Domain). */
export function fields(block: FieldBlock, name: string): string[] {
  return block.filter(([n]) => n === name).map(([, v]) => v);
}

/**
 * A value without its type: "rfc822; user@example.com" gives "user@example.com",
 * "smtp; 550 ..." gives "550 ...", "dns; mx.example.net" gives "mx.example.net".
 */
export function untyped(value: string): string {
  const m = /^([A-Za-z][A-Za-z0-9.-]{0,30})[ \t]*;[ \t]*/.exec(value);
  return (m ? value.slice(m[0].length) : value).trim();
}

/**
 * An address as a report writes it, cleaned: type, angle brackets, quotes and trailing
 * punctuation removed; RFC 6533 "\x{HEX}" escapes of utf-8 addresses decoded.
 */
export function cleanAddress(value: string): string {
  const bare = untyped(value)
    .replace(/\\x\{([0-9A-Fa-f]{1,6})\}/g, (_, hex: string) => codePoint(hex))
    .replace(/^[\s<"']+|[\s>"'.,;:]+$/g, '');
  const angle = /<([^<>\s]+@[^<>\s]+)>/.exec(bare);
  return angle ? angle[1]! : bare.split(/\s/)[0]!;
}

function codePoint(hex: string): string {
  const n = parseInt(hex, 16);
  return n <= 0x10ffff ? String.fromCodePoint(n) : '';
}
