import { STATIC_TABLE } from "./hpack-static-table.js";

/** Static index of each exact (name, value) pair, and of each name's first entry. */
const PAIR_INDEX = new Map<string, number>();
const NAME_INDEX = new Map<string, number>();
STATIC_TABLE.forEach(([name, value], i) => {
  PAIR_INDEX.set(`${name}\u0000${value}`, i + 1);
  if (!NAME_INDEX.has(name)) NAME_INDEX.set(name, i + 1);
});

/**
 * Encodes header lists as HPACK blocks without the dynamic table or Huffman coding: exact
 * static-table pairs indexed, everything else a literal without indexing. So the peer's decoder
 * never has state of ours to keep, and encoding is a copy. Names must be lowercase; names and
 * values are written as latin1 (one octet per char).
 */
export function encodeHeaders(headers: readonly (readonly [string, string])[]): Buffer {
  let size = 0;
  for (const [name, value] of headers) size += name.length + value.length + 12;
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  const int = (value: number, prefixBits: number, firstByteFlags: number): void => {
    const mask = (1 << prefixBits) - 1;
    if (value < mask) {
      out[pos++] = firstByteFlags | value;
      return;
    }
    out[pos++] = firstByteFlags | mask;
    value -= mask;
    while (value >= 0x80) {
      out[pos++] = (value & 0x7f) | 0x80;
      value = Math.floor(value / 0x80);
    }
    out[pos++] = value;
  };
  const str = (text: string): void => {
    int(text.length, 7, 0);
    pos += out.write(text, pos, "latin1");
  };
  for (const [name, value] of headers) {
    const pair = PAIR_INDEX.get(`${name}\u0000${value}`);
    if (pair !== undefined) {
      int(pair, 7, 0x80);
      continue;
    }
    const nameIndex = NAME_INDEX.get(name);
    if (nameIndex !== undefined) int(nameIndex, 4, 0x00);
    else {
      out[pos++] = 0x00;
      str(name);
    }
    str(value);
  }
  return out.subarray(0, pos);
}
