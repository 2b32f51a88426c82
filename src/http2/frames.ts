/** HTTP/2 frame types (RFC 9113 § 6). */
export const enum FrameType {
  Data = 0x0,
  Headers = 0x1,
  Priority = 0x2,
  RstStream = 0x3,
  Settings = 0x4,
  PushPromise = 0x5,
  Ping = 0x6,
  GoAway = 0x7,
  WindowUpdate = 0x8,
  Continuation = 0x9,
}

/** Frame flags; which apply depends on the type. */
export const enum FrameFlag {
  EndStream = 0x1,
  Ack = 0x1,
  EndHeaders = 0x4,
  Padded = 0x8,
  Priority = 0x20,
}

/** SETTINGS parameters (RFC 9113 § 6.5.2). */
export const enum Setting {
  HeaderTableSize = 0x1,
  EnablePush = 0x2,
  MaxConcurrentStreams = 0x3,
  InitialWindowSize = 0x4,
  MaxFrameSize = 0x5,
  MaxHeaderListSize = 0x6,
}

/** Error codes of RST_STREAM and GOAWAY (RFC 9113 § 7). */
export const enum ErrorCode {
  NoError = 0x0,
  ProtocolError = 0x1,
  InternalError = 0x2,
  FlowControlError = 0x3,
  StreamClosed = 0x5,
  FrameSizeError = 0x6,
  RefusedStream = 0x7,
  Cancel = 0x8,
  CompressionError = 0x9,
  EnhanceYourCalm = 0xb,
}

export const FRAME_HEADER_BYTES = 9;
/** The client's connection preface (RFC 9113 § 3.4). */
export const CLIENT_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
/** SETTINGS_MAX_FRAME_SIZE's default: the largest payload a peer must accept. */
export const DEFAULT_MAX_FRAME_SIZE = 16_384;
/** Both directions' flow-control window at the start (RFC 9113 § 6.9.2). */
export const DEFAULT_WINDOW = 65_535;

/** A frame's 9-byte header. */
export interface FrameHeader {
  length: number;
  type: number;
  flags: number;
  streamId: number;
}

export function readFrameHeader(buf: Uint8Array, offset: number): FrameHeader {
  return {
    length: (buf[offset]! << 16) | (buf[offset + 1]! << 8) | buf[offset + 2]!,
    type: buf[offset + 3]!,
    flags: buf[offset + 4]!,
    // The reserved high bit is ignored on receipt.
    streamId: ((buf[offset + 5]! & 0x7f) * 2 ** 24) + ((buf[offset + 6]! << 16) | (buf[offset + 7]! << 8) | buf[offset + 8]!),
  };
}

export function writeFrameHeader(out: Uint8Array, offset: number, length: number, type: FrameType, flags: number, streamId: number): void {
  out[offset] = (length >>> 16) & 0xff;
  out[offset + 1] = (length >>> 8) & 0xff;
  out[offset + 2] = length & 0xff;
  out[offset + 3] = type;
  out[offset + 4] = flags;
  out[offset + 5] = (streamId >>> 24) & 0x7f;
  out[offset + 6] = (streamId >>> 16) & 0xff;
  out[offset + 7] = (streamId >>> 8) & 0xff;
  out[offset + 8] = streamId & 0xff;
}

/** One frame as bytes: header and payload. */
export function frame(type: FrameType, flags: number, streamId: number, payload: Uint8Array = EMPTY): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  writeFrameHeader(out, 0, payload.length, type, flags, streamId);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/** A SETTINGS payload from (parameter, value) pairs. */
export function settingsPayload(settings: readonly (readonly [Setting, number])[]): Buffer {
  const out = Buffer.allocUnsafe(6 * settings.length);
  settings.forEach(([id, value], i) => {
    out.writeUInt16BE(id, 6 * i);
    out.writeUInt32BE(value, 6 * i + 2);
  });
  return out;
}

const EMPTY = new Uint8Array(0);
