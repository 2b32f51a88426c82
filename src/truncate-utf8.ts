/**
 * The longest prefix of `text` of at most `maxBytes` UTF-8 bytes that doesn't split a character:
 * a partial sequence would be invalid UTF-8 (a WebSocket close reason, a varchar column).
 */
export function truncateUtf8(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= maxBytes) return text;
  let end = maxBytes;
  // Back off continuation bytes (10xxxxxx) so the cut falls on a character boundary.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString("utf8");
}
