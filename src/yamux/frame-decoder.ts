import { decodeHeader, FrameType, HEADER_SIZE, MAX_FRAME_TYPE, PROTOCOL_VERSION, type FrameHeader } from "./frame.js";

/** What the decoder reports to; the session implements it. */
export interface FrameHandler {
  /**
   * A complete header with a known version and type. For a Data frame the next `length`
   * bytes of input go to `onPayload`. The header object is reused: copy what you keep.
   */
  onFrame(header: Readonly<FrameHeader>): void;
  /** A piece of the current Data frame's body, in order; pieces are views of the input chunk. */
  onPayload(piece: Buffer): void;
  /** The input broke the framing (version or type); the decoder has stopped. */
  onDecodeError(message: string): void;
}

/**
 * Streaming yamux frame decoder. Accepts input in any chunking (one byte at a time or many
 * frames per chunk) in one pass over each chunk: no recursion, no concatenation of input,
 * at most one 12-byte header held across chunks. Data bodies are handed on as views of the
 * input, so memory held here is constant; the handler bounds what it buffers after looking
 * at each header.
 */
export class FrameDecoder {
  private readonly handler: FrameHandler;
  /** Holds a header split across chunks; allocated the first time one is (from the shared pool). */
  private partial: Buffer | undefined;
  private partialLength = 0;
  private payloadLeft = 0;
  private stopped = false;
  private readonly header: FrameHeader = { version: 0, type: 0, flags: 0, streamId: 0, length: 0 };

  constructor(handler: FrameHandler) {
    this.handler = handler;
  }

  /** Stops decoding: later input is ignored. Safe to call from inside a handler callback. */
  stop(): void {
    this.stopped = true;
  }

  /** Decodes one chunk of input. */
  push(chunk: Buffer): void {
    const end = chunk.length;
    let offset = 0;
    while (offset < end && !this.stopped) {
      if (this.payloadLeft > 0) {
        const n = Math.min(this.payloadLeft, end - offset);
        this.payloadLeft -= n;
        this.handler.onPayload(chunk.subarray(offset, offset + n));
        offset += n;
        continue;
      }
      let header: FrameHeader;
      if (this.partialLength === 0 && end - offset >= HEADER_SIZE) {
        header = decodeHeader(chunk, offset, this.header);
        offset += HEADER_SIZE;
      } else {
        const n = Math.min(HEADER_SIZE - this.partialLength, end - offset);
        const partial = (this.partial ??= Buffer.allocUnsafe(HEADER_SIZE));
        chunk.copy(partial, this.partialLength, offset, offset + n);
        this.partialLength += n;
        offset += n;
        if (this.partialLength < HEADER_SIZE) return;
        this.partialLength = 0;
        header = decodeHeader(partial, 0, this.header);
      }
      if (header.version !== PROTOCOL_VERSION) {
        this.fail(`unsupported protocol version ${header.version}`);
        return;
      }
      if (header.type > MAX_FRAME_TYPE) {
        this.fail(`unknown frame type ${header.type}`);
        return;
      }
      if (header.type === FrameType.Data) this.payloadLeft = header.length;
      this.handler.onFrame(header);
    }
  }

  private fail(message: string): void {
    this.stopped = true;
    this.handler.onDecodeError(message);
  }
}
