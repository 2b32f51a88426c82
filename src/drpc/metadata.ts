/**
 * The body of an InvokeMetadata packet: protobuf `map<string, string> data = 1`, i.e. repeated
 * entries `{string key = 1; string value = 2;}` in field 1 (drpc's invoke.Metadata). Coded by hand
 * so this package needs no protobuf runtime; unknown fields are skipped as protobuf requires.
 */
import { DrpcError, DrpcErrorCode } from "./errors.js";
import { decodeUvarint, encodeUvarint, uvarintSize, type VarintOut } from "./varint.js";

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH_DELIMITED = 2;
const WIRE_FIXED32 = 5;
/** Tag of field 1 (entries; an entry's key) and field 2 (an entry's value), length-delimited. */
const TAG_FIELD_1 = (1 << 3) | WIRE_LENGTH_DELIMITED;
const TAG_FIELD_2 = (2 << 3) | WIRE_LENGTH_DELIMITED;

/** Encodes metadata as an InvokeMetadata body. */
export function encodeMetadata(metadata: ReadonlyMap<string, string>): Buffer {
  const entries: Buffer[] = [];
  let size = 0;
  for (const [key, value] of metadata) {
    const k = Buffer.from(key, "utf8");
    const v = Buffer.from(value, "utf8");
    const entry = Buffer.allocUnsafe(2 + uvarintSize(k.length) + k.length + uvarintSize(v.length) + v.length);
    let at = 0;
    entry[at++] = TAG_FIELD_1;
    at = encodeUvarint(entry, at, k.length);
    at += k.copy(entry, at);
    entry[at++] = TAG_FIELD_2;
    at = encodeUvarint(entry, at, v.length);
    v.copy(entry, at);
    entries.push(entry);
    size += 1 + uvarintSize(entry.length) + entry.length;
  }
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const entry of entries) {
    out[at++] = TAG_FIELD_1;
    at = encodeUvarint(out, at, entry.length);
    at += entry.copy(out, at);
  }
  return out;
}

/** Decodes an InvokeMetadata body; a later entry for a key wins, as in a protobuf map. */
export function decodeMetadata(data: Uint8Array): Map<string, string> {
  const metadata = new Map<string, string>();
  const scratch: VarintOut = { value: 0 };
  forEachField(data, 0, data.length, scratch, (field, start, end) => {
    if (field !== 1) return;
    let key = "";
    let value = "";
    forEachField(data, start, end, scratch, (entryField, from, to) => {
      if (entryField === 1) key = Buffer.from(data.buffer, data.byteOffset + from, to - from).toString("utf8");
      else if (entryField === 2) value = Buffer.from(data.buffer, data.byteOffset + from, to - from).toString("utf8");
    });
    metadata.set(key, value);
  });
  return metadata;
}

/** Calls `onBytes` for each length-delimited field in `data[start..end)`; skips the others. */
function forEachField(
  data: Uint8Array,
  start: number,
  end: number,
  scratch: VarintOut,
  onBytes: (field: number, from: number, to: number) => void,
): void {
  let at = start;
  while (at < end) {
    at = need(decodeUvarint(data, at, end, scratch));
    const field = Math.floor(scratch.value / 8);
    const wireType = scratch.value % 8;
    if (wireType === WIRE_VARINT) {
      at = need(decodeUvarint(data, at, end, scratch));
    } else if (wireType === WIRE_LENGTH_DELIMITED) {
      at = need(decodeUvarint(data, at, end, scratch));
      const to = at + scratch.value;
      if (to > end) throw malformed();
      onBytes(field, at, to);
      at = to;
    } else if (wireType === WIRE_FIXED64 || wireType === WIRE_FIXED32) {
      at += wireType === WIRE_FIXED64 ? 8 : 4;
      if (at > end) throw malformed();
    } else {
      throw malformed();
    }
  }
}

function need(offset: number): number {
  if (offset < 0) throw malformed();
  return offset;
}

function malformed(): DrpcError {
  return new DrpcError(DrpcErrorCode.Protocol, "malformed invoke metadata");
}
