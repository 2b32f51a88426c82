import type { Duplex } from "node:stream";
import { encodeFrameHeader, frameHeaderSize, SPLIT_SIZE } from "./wire.js";

interface QueuedPacket {
  kind: number;
  control: boolean;
  streamId: number;
  messageId: number;
  data: Uint8Array;
}

/**
 * Encodes packets into frames (split at 64 KiB) and writes what is queued as one buffer per
 * flush, so an Invoke, its Message and CloseSend, or a reply and its CloseSend, leave in one write
 * (one yamux Data frame). `scheduleFlush` coalesces everything queued in the same tick.
 */
export class PacketWriter {
  private readonly transport: Duplex;
  private readonly splitSize: number;
  private queue: QueuedPacket[] = [];
  private queuedBytes = 0;
  private flushScheduled = false;
  private readonly flushNow = (): void => {
    this.flushScheduled = false;
    this.flush();
  };

  constructor(transport: Duplex, splitSize = SPLIT_SIZE) {
    this.transport = transport;
    this.splitSize = splitSize;
  }

  /** True when packets wait for a flush. */
  get pending(): boolean {
    return this.queue.length > 0;
  }

  /** Queues a packet; nothing is written until a flush. */
  append(kind: number, streamId: number, messageId: number, data: Uint8Array, control = false): void {
    this.queue.push({ kind, control, streamId, messageId, data });
    const frames = Math.max(1, Math.ceil(data.length / this.splitSize));
    this.queuedBytes += data.length + frames * frameHeaderSize(streamId, messageId, this.splitSize);
  }

  /** Flushes at the end of this tick (once, however often it is called). */
  scheduleFlush(): void {
    if (this.flushScheduled || this.queue.length === 0) return;
    this.flushScheduled = true;
    queueMicrotask(this.flushNow);
  }

  /** Writes everything queued as one buffer; dropped once the transport can take no more writes. */
  flush(): void {
    const queue = this.queue;
    if (queue.length === 0) return;
    const out = Buffer.allocUnsafe(this.queuedBytes);
    let offset = 0;
    for (const packet of queue) offset = this.encode(out, offset, packet);
    this.queue = [];
    this.queuedBytes = 0;
    const transport = this.transport;
    if (transport.destroyed || transport.writableEnded) return;
    transport.write(offset === out.length ? out : out.subarray(0, offset));
  }

  private encode(out: Buffer, offset: number, packet: QueuedPacket): number {
    const { kind, control, streamId, messageId, data } = packet;
    let start = 0;
    do {
      const end = Math.min(start + this.splitSize, data.length);
      offset = encodeFrameHeader(out, offset, kind, end === data.length, control, streamId, messageId, end - start);
      out.set(data.subarray(start, end), offset);
      offset += end - start;
      start = end;
    } while (start < data.length);
    return offset;
  }
}
