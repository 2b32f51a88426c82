import { HUFFMAN_CODE_LENGTHS, HUFFMAN_CODES } from "./huffman-code.js";

const EOS = 256;

/**
 * The code as a binary tree in one array: node n's children are at 2n and 2n+1; a child holding
 * a negative number is a leaf, symbol -(value + 1); 0 is "no child yet". Node 0 is the root.
 */
const TREE = buildTree();

function buildTree(): Int32Array {
  // A complete prefix code of 257 symbols has 256 inner nodes.
  const tree = new Int32Array(2 * 256);
  let nodes = 1;
  for (let symbol = 0; symbol <= EOS; symbol++) {
    const code = HUFFMAN_CODES[symbol]!;
    const length = HUFFMAN_CODE_LENGTHS[symbol]!;
    let node = 0;
    for (let bit = length - 1; bit > 0; bit--) {
      const slot = 2 * node + ((code >>> bit) & 1);
      if (tree[slot] === 0) tree[slot] = nodes++;
      node = tree[slot]!;
    }
    tree[2 * node + (code & 1)] = -(symbol + 1);
  }
  return tree;
}

/** A Huffman-coded string literal that breaks RFC 7541 § 5.2: a COMPRESSION_ERROR. */
export class HuffmanError extends Error {
  override name = "HuffmanError";
}

/**
 * Decodes `length` bytes of `src` from `offset` as an HPACK Huffman string, into bytes. Padding
 * must be at most 7 bits, all ones (a prefix of EOS); EOS itself may not appear.
 */
export function huffmanDecode(src: Uint8Array, offset: number, length: number): Buffer {
  // Every symbol takes at least 5 bits.
  const out = Buffer.allocUnsafe(Math.ceil((length * 8) / 5));
  let written = 0;
  let node = 0;
  // Bits read since the last whole symbol, and whether they were all ones.
  let pending = 0;
  let allOnes = true;
  for (let i = offset; i < offset + length; i++) {
    const byte = src[i]!;
    for (let bit = 7; bit >= 0; bit--) {
      const one = (byte >>> bit) & 1;
      const next = TREE[2 * node + one]!;
      pending++;
      allOnes &&= one === 1;
      if (next < 0) {
        const symbol = -next - 1;
        if (symbol === EOS) throw new HuffmanError("huffman string holds EOS");
        out[written++] = symbol;
        node = 0;
        pending = 0;
        allOnes = true;
      } else {
        node = next;
      }
    }
  }
  if (pending > 7 || !allOnes) throw new HuffmanError("huffman string has bad padding");
  return out.subarray(0, written);
}
