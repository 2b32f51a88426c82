import { invalid } from "./rpc-errors.js";

/** UUIDs travel in the Agent API as 16 raw bytes. */
const UUID_BYTES = 16;

/**
 * The UUID string of 16 raw bytes. Any other length is an InvalidArgument error whose message
 * starts with `what` (e.g. "parse log source ID").
 */
export function uuidFromBytes(bytes: Uint8Array, what: string): string {
  if (bytes.length !== UUID_BYTES) throw invalid(`${what}: invalid UUID (got ${bytes.length} bytes)`);
  const hex = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The 16 raw bytes of a UUID string. */
export function uuidToBytes(uuid: string): Uint8Array {
  return new Uint8Array(Buffer.from(uuid.replaceAll("-", ""), "hex"));
}
