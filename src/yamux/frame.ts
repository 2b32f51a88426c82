/**
 * yamux frame header codec and protocol constants (hashicorp/yamux spec.md).
 *
 * Every frame starts with a 12-byte big-endian header:
 * version u8 | type u8 | flags u16 | stream id u32 | length u32.
 * Only Data frames carry a body (of `length` bytes); for WindowUpdate `length` is the window
 * delta, for Ping the opaque value echoed back, for GoAway the reason code.
 */

/** The only protocol version the spec defines. */
export const PROTOCOL_VERSION = 0;

/** Size of a frame header in bytes. */
export const HEADER_SIZE = 12;

/** Frame types. */
export const FrameType = { Data: 0, WindowUpdate: 1, Ping: 2, GoAway: 3 } as const;
/** A frame type value. */
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Highest defined frame type; anything above is a protocol error. */
export const MAX_FRAME_TYPE = FrameType.GoAway;

/** Header flags (a bit set). */
export const Flag = { SYN: 1, ACK: 2, FIN: 4, RST: 8 } as const;

/** GoAway reason codes. */
export const GoAwayCode = { Normal: 0, ProtocolError: 1, InternalError: 2 } as const;
/** A GoAway reason code. */
export type GoAwayCode = (typeof GoAwayCode)[keyof typeof GoAwayCode];

/** Every stream starts with this receive window on both sides; the spec fixes it, nothing negotiates it. */
export const INITIAL_STREAM_WINDOW = 256 * 1024;

/** Window sizes, deltas and stream ids are u32 on the wire. */
export const MAX_UINT32 = 0xffff_ffff;

/** Stream id 0 means "the session" (Ping, GoAway). */
export const SESSION_STREAM_ID = 0;

/** A decoded frame header. */
export interface FrameHeader {
  version: number;
  type: number;
  flags: number;
  streamId: number;
  length: number;
}

/** Writes a header at `offset` of `buf` (which must have 12 bytes free there). */
export function encodeHeader(
  buf: Buffer,
  offset: number,
  type: FrameType,
  flags: number,
  streamId: number,
  length: number,
): void {
  buf[offset] = PROTOCOL_VERSION;
  buf[offset + 1] = type;
  buf.writeUInt16BE(flags, offset + 2);
  buf.writeUInt32BE(streamId, offset + 4);
  buf.writeUInt32BE(length, offset + 8);
}

/** Reads a header at `offset` of `buf` into `out` (reused to avoid an allocation per frame). */
export function decodeHeader(buf: Buffer, offset: number, out: FrameHeader): FrameHeader {
  out.version = buf[offset]!;
  out.type = buf[offset + 1]!;
  out.flags = buf.readUInt16BE(offset + 2);
  out.streamId = buf.readUInt32BE(offset + 4);
  out.length = buf.readUInt32BE(offset + 8);
  return out;
}

/** Builds a standalone header buffer (tests, fuzzing, tools; the session encodes in place). */
export function frameHeader(type: FrameType, flags: number, streamId: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_SIZE);
  encodeHeader(buf, 0, type, flags, streamId, length);
  return buf;
}
