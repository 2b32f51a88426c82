import { DrpcError, DrpcErrorCode } from "./errors.js";

/** A uvarint (protobuf/LEB128) holds at most 64 bits: 10 bytes of 7 bits each. */
export const MAX_VARINT_BYTES = 10;

/** Where decodeUvarint puts the value it read (reused by callers, so decoding allocates nothing). */
export interface VarintOut {
  value: number;
}

/** Bytes the uvarint encoding of `value` takes. */
export function uvarintSize(value: number): number {
  let size = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    size++;
  }
  return size;
}

/** Writes `value` (a non-negative safe integer) as a uvarint at `offset`; returns the offset after it. */
export function encodeUvarint(buf: Uint8Array, offset: number, value: number): number {
  while (value >= 0x80) {
    buf[offset++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  buf[offset++] = value;
  return offset;
}

/**
 * Reads a uvarint from `buf[offset..end)` into `out.value`. Returns the offset after it, or -1
 * when the input ends first. Throws a protocol error for a value past 64 bits (a 10th byte over
 * 1, so also any 11th byte) or past 2^53 (ids and lengths that large never occur; numbers stay
 * exact).
 */
export function decodeUvarint(buf: Uint8Array, offset: number, end: number, out: VarintOut): number {
  let value = 0;
  let scale = 1;
  for (let i = 0; ; i++) {
    if (offset + i >= end) return -1;
    const byte = buf[offset + i]!;
    if (i === MAX_VARINT_BYTES - 1 && byte > 1) throw new DrpcError(DrpcErrorCode.Protocol, "varint overflows 64 bits");
    value += (byte & 0x7f) * scale;
    if (value > Number.MAX_SAFE_INTEGER) throw new DrpcError(DrpcErrorCode.Protocol, "varint exceeds 2^53");
    if (byte < 0x80) {
      out.value = value;
      return offset + i + 1;
    }
    scale *= 0x80;
  }
}
