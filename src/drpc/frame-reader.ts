import type { VarintOut } from "./varint.js";
import { decodeFrameHeader, MAX_FRAME_HEADER_BYTES, type FrameHeader } from "./wire.js";

/** What the frame reader reports to; the packet reader implements it. Its methods may throw. */
export interface FrameSink {
  /** A complete header; its `length` data bytes follow. The object is reused: copy what you keep. */
  onFrameHeader(header: Readonly<FrameHeader>): void;
  /** A piece of the current frame's data, in order; a view of the input chunk. */
  onFrameData(piece: Buffer): void;
  /** The current frame's data is complete (also right after the header of an empty frame). */
  onFrameEnd(): void;
}

/**
 * Streaming DRPC frame reader. Takes input in any chunking (a byte at a time or many frames per
 * chunk) in one pass, holding at most one partial header (31 bytes) across chunks; frame data is
 * handed on as views of the input, so the sink decides what to keep and bounds it after seeing
 * each header. Errors thrown by the header decoder or the sink propagate out of `push`.
 */
export class FrameReader {
  private readonly sink: FrameSink;
  private readonly header: FrameHeader = { kind: 0, done: false, control: false, streamId: 0, messageId: 0, length: 0 };
  private readonly scratch: VarintOut = { value: 0 };
  /** Holds a header split across chunks; allocated the first time one is. */
  private partial: Buffer | undefined;
  private partialLength = 0;
  private dataLeft = 0;
  private stopped = false;

  constructor(sink: FrameSink) {
    this.sink = sink;
  }

  /** Stops reading: later input is ignored. */
  stop(): void {
    this.stopped = true;
  }

  /** Reads one chunk of input. */
  push(chunk: Buffer): void {
    const end = chunk.length;
    let offset = 0;
    while (offset < end && !this.stopped) {
      if (this.dataLeft > 0) {
        const n = Math.min(this.dataLeft, end - offset);
        this.dataLeft -= n;
        this.sink.onFrameData(chunk.subarray(offset, offset + n));
        offset += n;
        if (this.dataLeft === 0) this.sink.onFrameEnd();
        continue;
      }
      if (this.partialLength === 0) {
        const at = decodeFrameHeader(chunk, offset, end, this.header, this.scratch);
        if (at < 0) {
          // An incomplete header is shorter than the longest one, or the decoder would have thrown.
          const partial = (this.partial ??= Buffer.allocUnsafe(MAX_FRAME_HEADER_BYTES));
          this.partialLength = chunk.copy(partial, 0, offset, end);
          return;
        }
        offset = at;
      } else {
        const partial = this.partial!;
        const n = chunk.copy(partial, this.partialLength, offset, Math.min(end, offset + MAX_FRAME_HEADER_BYTES - this.partialLength));
        const at = decodeFrameHeader(partial, 0, this.partialLength + n, this.header, this.scratch);
        if (at < 0) {
          this.partialLength += n;
          offset += n;
          continue;
        }
        offset += at - this.partialLength;
        this.partialLength = 0;
      }
      this.startFrame();
    }
  }

  private startFrame(): void {
    this.sink.onFrameHeader(this.header);
    this.dataLeft = this.header.length;
    if (this.dataLeft === 0 && !this.stopped) this.sink.onFrameEnd();
  }
}
