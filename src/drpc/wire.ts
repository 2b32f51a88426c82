/**
 * DRPC wire constants and the frame header codec (storj.io/drpc, as Coder uses it).
 *
 * A frame is `control byte | uvarint stream id | uvarint message id | uvarint data length | data`.
 * The control byte: bit 7 = control flag, bits 6..1 = packet kind, bit 0 = done (last frame of
 * its packet). A packet is one or more frames with the same (stream id, message id, kind).
 */
import { decodeUvarint, encodeUvarint, MAX_VARINT_BYTES, uvarintSize, type VarintOut } from "./varint.js";

/** Packet kinds. */
export const PacketKind = {
  /** Starts an RPC; the data is the method string, e.g. `/coder.agent.v2.Agent/GetManifest`. */
  Invoke: 1,
  /** One message, protobuf binary without a length prefix. */
  Message: 2,
  /** The RPC failed: 8-byte big-endian code, then a UTF-8 message. */
  Error: 3,
  /** The sender gave up on the RPC (sent with the control flag; Coder agents never send it). */
  Cancel: 4,
  /** The RPC is over, both ways. */
  Close: 5,
  /** The sender sends no more messages; the other way stays open. */
  CloseSend: 6,
  /** Metadata for the next Invoke of the same stream id. */
  InvokeMetadata: 7,
} as const;
/** A packet kind value. */
export type PacketKind = (typeof PacketKind)[keyof typeof PacketKind];

const KIND_NAMES = ["kind 0", "Invoke", "Message", "Error", "Cancel", "Close", "CloseSend", "InvokeMetadata"];

/** True for the kinds above; others are ignored with the control flag and an error without. */
export function isKnownKind(kind: number): kind is PacketKind {
  return kind >= PacketKind.Invoke && kind <= PacketKind.InvokeMetadata;
}

/** A kind's name for messages. */
export function kindName(kind: number): string {
  return KIND_NAMES[kind] ?? `kind ${kind}`;
}

/** Control byte bits. */
const CONTROL_FLAG = 0x80;
const DONE_FLAG = 0x01;
const KIND_MASK = 0x3f;

/** Senders split a packet into frames of at most this much data, as drpc does. */
export const SPLIT_SIZE = 64 * 1024;

/** Largest reassembled packet, both ways: Coder's setting (a 4 MiB WebSocket read limit). */
export const MAX_PACKET_BYTES = 4 * 1024 * 1024;

/** The longest frame header: the control byte and three 10-byte varints. */
export const MAX_FRAME_HEADER_BYTES = 1 + 3 * MAX_VARINT_BYTES;

/** A decoded frame header; `length` data bytes follow it. */
export interface FrameHeader {
  kind: number;
  done: boolean;
  control: boolean;
  streamId: number;
  messageId: number;
  length: number;
}

/** The control byte of a frame. */
function controlByte(kind: number, done: boolean, control: boolean): number {
  return (control ? CONTROL_FLAG : 0) | ((kind & KIND_MASK) << 1) | (done ? DONE_FLAG : 0);
}

/** Bytes the header of a frame with these ids and data length takes. */
export function frameHeaderSize(streamId: number, messageId: number, length: number): number {
  return 1 + uvarintSize(streamId) + uvarintSize(messageId) + uvarintSize(length);
}

/** Writes a frame header at `offset`; returns the offset after it (where the data goes). */
export function encodeFrameHeader(
  buf: Uint8Array,
  offset: number,
  kind: number,
  done: boolean,
  control: boolean,
  streamId: number,
  messageId: number,
  length: number,
): number {
  buf[offset++] = controlByte(kind, done, control);
  offset = encodeUvarint(buf, offset, streamId);
  offset = encodeUvarint(buf, offset, messageId);
  return encodeUvarint(buf, offset, length);
}

/**
 * Reads a frame header from `buf[offset..end)` into `out`. Returns the offset after it, or -1
 * when the input ends first. Throws a protocol error for a malformed varint.
 */
export function decodeFrameHeader(buf: Uint8Array, offset: number, end: number, out: FrameHeader, scratch: VarintOut): number {
  if (offset >= end) return -1;
  const byte = buf[offset]!;
  let at = decodeUvarint(buf, offset + 1, end, scratch);
  if (at < 0) return -1;
  const streamId = scratch.value;
  at = decodeUvarint(buf, at, end, scratch);
  if (at < 0) return -1;
  const messageId = scratch.value;
  at = decodeUvarint(buf, at, end, scratch);
  if (at < 0) return -1;
  out.control = (byte & CONTROL_FLAG) !== 0;
  out.kind = (byte >> 1) & KIND_MASK;
  out.done = (byte & DONE_FLAG) !== 0;
  out.streamId = streamId;
  out.messageId = messageId;
  out.length = scratch.value;
  return at;
}

/** Bytes of the big-endian code that starts an Error packet's body. */
const ERROR_CODE_BYTES = 8;
const UINT32_RANGE = 0x1_0000_0000;

/** The body of an Error packet: the 8-byte big-endian code, then the UTF-8 message. */
export function encodeErrorBody(code: number, message: string): Buffer {
  const text = Buffer.from(message, "utf8");
  const body = Buffer.allocUnsafe(ERROR_CODE_BYTES + text.length);
  body.writeUInt32BE(Math.floor(code / UINT32_RANGE), 0);
  body.writeUInt32BE(code % UINT32_RANGE, 4);
  text.copy(body, ERROR_CODE_BYTES);
  return body;
}

/** Reads an Error packet's body; one shorter than the code is all message with code 0, as drpc reads it. */
export function decodeErrorBody(body: Buffer): { code: number; message: string } {
  if (body.length < ERROR_CODE_BYTES) return { code: 0, message: body.toString("utf8") };
  return {
    code: body.readUInt32BE(0) * UINT32_RANGE + body.readUInt32BE(4),
    message: body.toString("utf8", ERROR_CODE_BYTES),
  };
}
