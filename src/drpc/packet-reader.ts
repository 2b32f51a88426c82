import { DrpcError, DrpcErrorCode } from "./errors.js";
import { FrameReader, type FrameSink } from "./frame-reader.js";
import { MAX_PACKET_BYTES, type FrameHeader } from "./wire.js";

/** A reassembled packet. `data` may be a view of the input: copy it to keep it past the RPC. */
export interface Packet {
  kind: number;
  /** The control flag of its first frame. */
  control: boolean;
  streamId: number;
  messageId: number;
  data: Buffer;
}

const EMPTY = Buffer.alloc(0);

/**
 * Reassembles packets from a peer's frames, enforcing drpc's reader rules:
 * - ids (stream, then message) never go down: "id monotonicity violation";
 * - a frame with a new id drops an unfinished packet;
 * - same id, other kind: "packet kind change";
 * - a packet over `maxPacketBytes` (checked at each frame header, before its data is read):
 *   "data overflow";
 * - after a packet's last frame the expected message id moves on by one, so an id is never reused.
 * Every violation throws a protocol `DrpcError` out of `push`; the caller closes the transport.
 * Kinds are not judged here: the connection knows which it understands.
 */
export class PacketReader implements FrameSink {
  private readonly frames = new FrameReader(this);
  private readonly onPacket: (packet: Packet) => void;
  private readonly maxPacketBytes: number;
  // The lowest id the next frame may carry; drpc starts at (1, 1), so stream 0 is never valid.
  private streamId = 1;
  private messageId = 1;
  private inPacket = false;
  private kind = 0;
  private control = false;
  private done = false;
  private length = 0;
  private pieces: Buffer[] = [];

  constructor(onPacket: (packet: Packet) => void, maxPacketBytes = MAX_PACKET_BYTES) {
    this.onPacket = onPacket;
    this.maxPacketBytes = maxPacketBytes;
  }

  /** Reads one chunk of input; delivers each packet completed by it, in order. */
  push(chunk: Buffer): void {
    this.frames.push(chunk);
  }

  /** Stops reading: later input (also the rest of the current chunk) is ignored. */
  stop(): void {
    this.frames.stop();
  }

  /** @internal FrameSink. */
  onFrameHeader(header: Readonly<FrameHeader>): void {
    const { streamId, messageId } = header;
    if (streamId < this.streamId || (streamId === this.streamId && messageId < this.messageId)) {
      throw new DrpcError(DrpcErrorCode.Protocol, "id monotonicity violation");
    }
    if (!this.inPacket || streamId !== this.streamId || messageId !== this.messageId) {
      this.streamId = streamId;
      this.messageId = messageId;
      this.inPacket = true;
      this.kind = header.kind;
      this.control = header.control;
      this.length = 0;
      this.pieces.length = 0;
    } else if (header.kind !== this.kind) {
      throw new DrpcError(DrpcErrorCode.Protocol, "packet kind change");
    }
    if (this.length + header.length > this.maxPacketBytes) {
      throw new DrpcError(DrpcErrorCode.Protocol, "data overflow");
    }
    this.length += header.length;
    this.done = header.done;
  }

  /** @internal FrameSink. */
  onFrameData(piece: Buffer): void {
    this.pieces.push(piece);
  }

  /** @internal FrameSink. */
  onFrameEnd(): void {
    if (!this.done) return;
    const pieces = this.pieces;
    const data = pieces.length === 0 ? EMPTY : pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, this.length);
    pieces.length = 0;
    this.inPacket = false;
    const packet: Packet = { kind: this.kind, control: this.control, streamId: this.streamId, messageId: this.messageId, data };
    this.messageId++;
    this.onPacket(packet);
  }
}
