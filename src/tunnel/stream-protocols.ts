/**
 * Which protocol a stream speaks, from its first bytes. DRPC's first byte is a packet's control
 * byte: bit 7 the control flag, bits 6..1 the kind (1..7: Invoke to InvokeMetadata), bit 0 done,
 * so 0x02..0x0f or 0x82..0x8f (a Coder agent opens with 0x03, Invoke, or 0x0f, InvokeMetadata).
 * HTTP/2 with prior knowledge opens with its preface, `PRI * HTTP/2.0`; HTTP/1.x with a method,
 * in uppercase letters. The three never share a first byte except `P`, which POST, PUT and PATCH
 * also start with, so a `P` waits for as much of the preface as tells them apart.
 */

/** The HTTP/2 client connection preface starts with these bytes (RFC 9113 §3.4); no HTTP/1.1 method does. */
const HTTP2_PREFACE_START = Buffer.from("PRI * HTTP/2.0");

export type HttpProtocol = "http1" | "http2";
export type TunnelStreamProtocol = HttpProtocol | "drpc";

/**
 * For the plain port: the HTTP/2 preface picks HTTP/2, anything else HTTP/1.1, whose parser
 * answers what is not HTTP with a 400. Undefined while the bytes could still be the preface.
 */
export function classifyHttp(seen: Buffer): HttpProtocol | undefined {
  const n = Math.min(seen.length, HTTP2_PREFACE_START.length);
  const isHttp2Prefix = seen.subarray(0, n).equals(HTTP2_PREFACE_START.subarray(0, n));
  if (!isHttp2Prefix) return "http1";
  return seen.length < HTTP2_PREFACE_START.length ? undefined : "http2";
}

/** For a tunnel's stream: DRPC, HTTP/2 or HTTP/1.1; null for a first byte none of them sends. */
export function classifyTunnelStream(seen: Buffer): TunnelStreamProtocol | undefined | null {
  const first = seen[0];
  if (first === undefined) return undefined;
  if (isDrpcControlByte(first)) return "drpc";
  if (first >= 0x41 && first <= 0x5a) return classifyHttp(seen);
  return null;
}

function isDrpcControlByte(byte: number): boolean {
  const withoutControlFlag = byte & 0x7f;
  return withoutControlFlag >= 0x02 && withoutControlFlag <= 0x0f;
}
