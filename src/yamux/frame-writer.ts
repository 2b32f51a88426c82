import type { Duplex } from "node:stream";
import { encodeHeader, HEADER_SIZE, type FrameType } from "./frame.js";

/** Told when the transport drained after a flush had to wait for it. Internal. */
export interface WriterOwner {
  onWriterDrain(): void;
}

/** Bytes worth a write of their own at once (without a message limit): a socket's usual send chunk. */
const FULL_WRITE_BYTES = 64 * 1024;

/** Frames queued in a turn that mark a session busy enough to wait a turn more. */
const MIN_FRAMES_TO_HOLD = 2;

/** Numbers kept per queued frame in `FrameWriter.meta`: type, flags, stream id, length. */
const META_PER_FRAME = 4;

/**
 * Queues outgoing frames and writes them to the transport once per event-loop turn; a session
 * busy with concurrent calls (two or more frames queued in the turn) waits one turn more. The
 * extra turn gathers what its calls send in pieces (node's HTTP/2 sends a response's trailers a
 * turn after its headers and data) and the calls that finish meanwhile into one WebSocket message:
 * under 32 concurrent gRPC calls, a write per several calls instead of about one per call. A lone
 * frame goes out at once: on a saturated server a turn is long, and many agents' lone calls gain
 * nothing from waiting (a 10,000-agent fleet's p50 went from 12 to 60 ms when every frame waited).
 *
 * Frames are kept as numbers plus a payload reference until the flush, so queuing a frame
 * allocates nothing. The flush encodes all headers into one buffer. With `maxWriteBytes` (a
 * transport that sends each write as one message, such as a WebSocket whose peer has a read
 * limit) the frames are copied into writes of whole frames of at most that many bytes; frames
 * are never cut, as the session keeps every Data frame within the limit. Without it, on a
 * transport that gathers writes (`_writev`, e.g. a socket) header runs and payloads are written
 * corked, and on any other everything is copied into one buffer and written once.
 * Internal to the yamux package.
 */
export class FrameWriter {
  private readonly transport: Duplex;
  private readonly gathers: boolean;
  private readonly highWaterMark: number;
  private readonly maxWriteBytes: number | undefined;
  /** Queued bytes that are flushed without waiting the extra turn: one full write. */
  private readonly fullWriteBytes: number;
  // Queues are allocated on first use: an idle session should cost little.
  private meta: number[] | undefined;
  private payloads: (Buffer | undefined)[] | undefined;
  private queuedBytes = 0;
  private scheduled: NodeJS.Immediate | undefined;
  private waiters: (() => void)[] | undefined;
  private onDrain: (() => void) | undefined;
  private closed = false;
  private readonly owner: WriterOwner;

  /**
   * @param highWaterMark bytes queued here before `whenWritable` makes writers wait.
   * @param maxWriteBytes largest single write, in whole frames; undefined for no limit.
   */
  constructor(transport: Duplex, highWaterMark: number, owner: WriterOwner, maxWriteBytes?: number) {
    this.transport = transport;
    this.owner = owner;
    this.highWaterMark = highWaterMark;
    this.maxWriteBytes = maxWriteBytes;
    this.fullWriteBytes = Math.min(maxWriteBytes ?? FULL_WRITE_BYTES, FULL_WRITE_BYTES);
    this.gathers = maxWriteBytes === undefined && typeof (transport as { _writev?: unknown })._writev === "function";
  }

  /** True while the transport holds more than its high-water mark (we wait for 'drain'). */
  get blocked(): boolean {
    return this.onDrain !== undefined;
  }

  /** Queues a frame. The payload (Data frames only) is referenced, not copied, until the flush. */
  frame(type: FrameType, flags: number, streamId: number, length: number, payload?: Buffer): void {
    if (this.closed) return;
    (this.meta ??= []).push(type, flags, streamId, length);
    (this.payloads ??= []).push(payload);
    this.queuedBytes += HEADER_SIZE + (payload === undefined ? 0 : payload.length);
    this.scheduled ??= setImmediate(flushNextTurn, this);
  }

  /** @internal The first turn has passed: two or more frames (short of a full write) wait one turn more; else flush. */
  holdOneTurn(): void {
    const frames = this.payloads?.length ?? 0;
    if (frames >= MIN_FRAMES_TO_HOLD && this.queuedBytes < this.fullWriteBytes) this.scheduled = setImmediate(flushWriter, this);
    else this.flush();
  }

  /** Calls `callback` now if there is room, else once queued bytes are written and drained. */
  whenWritable(callback: () => void): void {
    if (this.onDrain === undefined && this.queuedBytes < this.highWaterMark) callback();
    else (this.waiters ??= []).push(callback);
  }

  /** Writes everything queued now. */
  flush(): void {
    if (this.scheduled !== undefined) {
      clearImmediate(this.scheduled);
      this.scheduled = undefined;
    }
    const { meta, payloads, queuedBytes } = this;
    if (this.closed || meta === undefined || payloads === undefined || payloads.length === 0) return;
    this.meta = undefined;
    this.payloads = undefined;
    this.queuedBytes = 0;
    let hasRoom: boolean;
    if (this.gathers) hasRoom = this.writeGathered(meta, payloads);
    else if (this.maxWriteBytes === undefined) hasRoom = this.writeCopied(meta, payloads, 0, payloads.length, queuedBytes);
    else hasRoom = this.writeBounded(meta, payloads, this.maxWriteBytes);
    if (hasRoom) this.releaseWaiters();
    else if (this.onDrain === undefined) {
      this.onDrain = () => {
        this.onDrain = undefined;
        this.owner.onWriterDrain();
        this.releaseWaiters();
      };
      this.transport.once("drain", this.onDrain);
    }
  }

  /** Drops everything queued and stops writing; waiters are never called (their streams are gone). */
  close(): void {
    this.closed = true;
    if (this.scheduled !== undefined) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    this.meta = undefined;
    this.payloads = undefined;
    this.waiters = undefined;
    if (this.onDrain !== undefined) this.transport.off("drain", this.onDrain);
  }

  /** Writes frames `start` to `end` (exclusive), `total` bytes with headers, as one copied buffer. */
  private writeCopied(meta: number[], payloads: (Buffer | undefined)[], start: number, end: number, total: number): boolean {
    const out = Buffer.allocUnsafe(total);
    let offset = 0;
    for (let i = start; i < end; i++) {
      const m = i * META_PER_FRAME;
      encodeHeader(out, offset, meta[m] as FrameType, meta[m + 1]!, meta[m + 2]!, meta[m + 3]!);
      offset += HEADER_SIZE;
      const payload = payloads[i];
      if (payload !== undefined) offset += payload.copy(out, offset);
    }
    return this.transport.write(out);
  }

  /** Writes the frames in as few writes of whole frames as fit in `max` bytes each. */
  private writeBounded(meta: number[], payloads: (Buffer | undefined)[], max: number): boolean {
    let hasRoom = true;
    let start = 0;
    while (start < payloads.length) {
      let end = start;
      let bytes = 0;
      for (; end < payloads.length; end++) {
        const size = HEADER_SIZE + (payloads[end]?.length ?? 0);
        if (end > start && bytes + size > max) break;
        bytes += size;
      }
      hasRoom = this.writeCopied(meta, payloads, start, end, bytes) && hasRoom;
      start = end;
    }
    return hasRoom;
  }

  private writeGathered(meta: number[], payloads: (Buffer | undefined)[]): boolean {
    const headers = Buffer.allocUnsafe(payloads.length * HEADER_SIZE);
    const transport = this.transport;
    transport.cork();
    let runStart = 0;
    let hasRoom = true;
    for (let i = 0; i < payloads.length; i++) {
      const m = i * META_PER_FRAME;
      encodeHeader(headers, i * HEADER_SIZE, meta[m] as FrameType, meta[m + 1]!, meta[m + 2]!, meta[m + 3]!);
      const payload = payloads[i];
      if (payload !== undefined && payload.length > 0) {
        // A run of headers goes out as one piece, then the payload by reference.
        hasRoom = transport.write(headers.subarray(runStart, (i + 1) * HEADER_SIZE)) && hasRoom;
        hasRoom = transport.write(payload) && hasRoom;
        runStart = (i + 1) * HEADER_SIZE;
      }
    }
    if (runStart < headers.length) hasRoom = transport.write(headers.subarray(runStart)) && hasRoom;
    transport.uncork();
    return hasRoom;
  }

  private releaseWaiters(): void {
    const waiters = this.waiters;
    if (waiters === undefined) return;
    this.waiters = undefined;
    for (const waiter of waiters) waiter();
  }
}

function flushNextTurn(writer: FrameWriter): void {
  writer.holdOneTurn();
}

function flushWriter(writer: FrameWriter): void {
  writer.flush();
}
