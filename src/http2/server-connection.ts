import type { Duplex } from "node:stream";
import {
  CLIENT_PREFACE,
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_WINDOW,
  ErrorCode,
  FRAME_HEADER_BYTES,
  FrameFlag,
  FrameType,
  Setting,
  frame,
  readFrameHeader,
  settingsPayload,
} from "./frames.js";
import { encodeHeaders } from "./hpack-encoder.js";
import { HpackDecoder, HpackError, type HeaderList } from "./hpack-decoder.js";

/** Options of {@link ServerConnection}. */
export interface ServerConnectionOptions {
  /** SETTINGS_MAX_CONCURRENT_STREAMS: streams past it are refused (RST_STREAM REFUSED_STREAM). Default 100. */
  maxConcurrentStreams?: number;
  /** Receive window of each stream (SETTINGS_INITIAL_WINDOW_SIZE). Default 1 MiB. */
  streamWindow?: number;
  /** Receive window of the connection. Default 4 MiB. */
  connectionWindow?: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE, enforced on every header block. Default 16 KiB. */
  maxHeaderListBytes?: number;
  /** Longest the acknowledgement of grpc-go's bandwidth probe waits for a write to join. Default 30 s. */
  bdpPingAckHoldMs?: number;
  /** Called with each new stream once its request headers are in. */
  onStream(stream: ServerStream): void;
}

/** A protocol violation that ends the connection with GOAWAY. */
class ConnectionError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const MAX_WINDOW = 2 ** 31 - 1;

/**
 * One stream of a {@link ServerConnection}: the request's headers, its body as it arrives
 * (`onData`, then `onEnd`; call `consumed` as bytes are used, which returns flow-control credit),
 * and the response: `respond`, `write` (queued against the peer's windows), `end` with trailers.
 */
export class ServerStream {
  onData: ((chunk: Buffer) => void) | undefined;
  onEnd: (() => void) | undefined;
  /** The peer reset the stream, or the connection ended: nothing more is sent or received. */
  onReset: ((code: ErrorCode) => void) | undefined;
  /** @internal */
  sendWindow: number;
  /** @internal */
  readonly queued: Buffer[] = [];
  /** @internal Bytes written and not yet sent (the peer's windows hold them back). */
  queuedBytes = 0;
  private drainWaiters: (() => void)[] | undefined;
  /** @internal */
  ended: HeaderList | null | undefined;
  /** @internal */
  remoteClosed = false;
  /** @internal */
  closed = false;
  /** @internal Bytes the peer may still send on this stream. */
  receiveAvailable: number;
  private unacknowledged = 0;

  constructor(
    private readonly connection: ServerConnection,
    readonly id: number,
    readonly headers: HeaderList,
    sendWindow: number,
    private readonly receiveWindow: number,
  ) {
    this.sendWindow = sendWindow;
    this.receiveAvailable = receiveWindow;
  }

  /** True once no more request bytes can come: the request ended, or the stream was reset. */
  get requestDone(): boolean {
    return this.remoteClosed;
  }

  /** The value of request header `name` (lowercase), the first if repeated. */
  header(name: string): string | undefined {
    for (const [n, v] of this.headers) if (n === name) return v;
    return undefined;
  }

  /** Sends the response headers; `endStream` for a response without body or trailers. */
  respond(headers: HeaderList, endStream = false): void {
    this.connection.sendHeaders(this, headers, endStream);
  }

  /** Queues body bytes; they go out as the peer's windows allow. */
  write(data: Buffer): void {
    if (this.closed || this.ended !== undefined) return;
    if (data.length > 0) {
      this.queued.push(data);
      this.queuedBytes += data.length;
    }
    this.connection.flushStream(this);
  }

  /** Resolves once at most `lowWaterBytes` written bytes wait for the peer's windows, or the stream is gone. */
  whenDrained(lowWaterBytes = 64 * 1024): Promise<void> {
    if (this.closed || this.queuedBytes <= lowWaterBytes) return Promise.resolve();
    return new Promise((resolve) => (this.drainWaiters ??= []).push(resolve));
  }

  /** @internal */
  sent(bytes: number): void {
    this.queuedBytes -= bytes;
    if (this.drainWaiters !== undefined && (this.queuedBytes <= 64 * 1024 || this.closed)) {
      const waiters = this.drainWaiters;
      this.drainWaiters = undefined;
      for (const w of waiters) w();
    }
  }

  /** Ends the response, with trailers if given, once every queued byte is out. */
  end(trailers?: HeaderList): void {
    if (this.closed || this.ended !== undefined) return;
    this.ended = trailers ?? null;
    this.connection.flushStream(this);
  }

  /** Resets the stream (RST_STREAM). */
  reset(code: ErrorCode = ErrorCode.Cancel): void {
    this.connection.resetStream(this, code);
  }

  /** Returns credit for `bytes` of the request body the handler has used. */
  consumed(bytes: number): void {
    this.unacknowledged += bytes;
    if (!this.remoteClosed && this.unacknowledged >= this.receiveWindow / 2) {
      this.connection.windowUpdate(this.id, this.unacknowledged);
      this.receiveAvailable += this.unacknowledged;
      this.unacknowledged = 0;
    }
  }
}

/** The payload of grpc-go's bandwidth-delay probe (internal/transport/bdp_estimator.go). */
const GRPC_GO_BDP_PING = Buffer.from([2, 4, 16, 16, 9, 14, 7, 7]);
/** Longest an acknowledgement of that probe waits for a write to join (see holdPingAck). */
const BDP_PING_ACK_HOLD_MS = 30_000;

/**
 * The server side of one HTTP/2 connection (RFC 9113) over any Duplex, with the HPACK codec of
 * this package: what a tunnel's HTTP/2 stream needs, without node:http2. Every frame the peer
 * sends is checked; a violation ends the connection with GOAWAY and the error code the RFC
 * names, an error of one stream resets that stream. Both directions are flow controlled.
 * Responses use a stateless HPACK encoder, so the peer's header table never holds our state.
 */
export class ServerConnection {
  private readonly decoder: HpackDecoder;
  private readonly streams = new Map<number, ServerStream>();
  private readonly maxConcurrentStreams: number;
  private readonly streamWindow: number;
  private readonly connectionWindow: number;
  private pending: Buffer = Buffer.alloc(0);
  private prefaceSeen = false;
  private settingsSeen = false;
  private lastStreamId = 0;
  /** A header block being continued: its stream, flags and fragments. */
  private continuing: { streamId: number; flags: number; fragments: Buffer[]; bytes: number } | undefined;
  private peerMaxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  private peerInitialWindow = DEFAULT_WINDOW;
  private sendWindow = DEFAULT_WINDOW;
  private receiveUnacknowledged = 0;
  private receiveAvailable: number;
  private goingAway = false;
  private done = false;
  private outgoing: Buffer[] = [];
  /** The acknowledgement of grpc-go's bandwidth probe, waiting for a write to join. */
  private heldPingAck: Buffer | undefined;
  /** Sends a held acknowledgement that no write took along in time; one per connection, re-armed. */
  private heldPingTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly transport: Duplex,
    private readonly options: ServerConnectionOptions,
  ) {
    this.maxConcurrentStreams = options.maxConcurrentStreams ?? 100;
    this.streamWindow = options.streamWindow ?? 1 << 20;
    this.connectionWindow = options.connectionWindow ?? 4 << 20;
    this.receiveAvailable = this.connectionWindow;
    this.decoder = new HpackDecoder(undefined, options.maxHeaderListBytes ?? 16 * 1024);
    transport.write(
      Buffer.concat([
        frame(
          FrameType.Settings,
          0,
          0,
          settingsPayload([
            [Setting.MaxConcurrentStreams, this.maxConcurrentStreams],
            [Setting.InitialWindowSize, this.streamWindow],
            [Setting.MaxHeaderListSize, options.maxHeaderListBytes ?? 16 * 1024],
            [Setting.EnablePush, 0],
          ]),
        ),
        frame(FrameType.WindowUpdate, 0, 0, u32(this.connectionWindow - DEFAULT_WINDOW)),
      ]),
    );
    transport.on("data", (chunk: Buffer) => this.receive(chunk));
    transport.on("end", () => this.finish(ErrorCode.NoError));
    transport.on("close", () => this.finish(ErrorCode.Cancel));
    transport.on("error", () => this.finish(ErrorCode.InternalError));
  }

  /**
   * Frames go out together: everything sent while one turn's work runs (a response's headers,
   * data and trailers, the PING and SETTINGS acknowledgements of what was read) is one write.
   */
  private send(bytes: Buffer): void {
    if (this.outgoing.push(bytes) === 1) queueMicrotask(this.flushOutgoing);
  }

  private readonly flushOutgoing = (): void => {
    const out = this.outgoing;
    this.outgoing = [];
    if (out.length === 0 || this.transport.destroyed) return;
    // Last, after any DATA: grpc-go starts its next probe only at DATA that finds none out.
    if (this.heldPingAck !== undefined) {
      out.push(this.heldPingAck);
      this.heldPingAck = undefined;
    }
    this.transport.write(out.length === 1 ? out[0]! : Buffer.concat(out));
  };

  /**
   * grpc-go sends a bandwidth probe (a PING with a fixed payload) after the DATA of nearly every
   * response, and starts no other until it is acknowledged. Answered at once, each unary call
   * costs a second write and a second read; in a fleet of agents alone on their tunnels that was
   * 27 % of the server's CPU. The acknowledgement joins the connection's next write instead (the
   * next response, usually) or goes out alone after `bdpPingAckHoldMs`. Liveness pings (any
   * other payload, grpc-go's keepalive included) are answered at once.
   */
  private holdPingAck(payload: Buffer): void {
    this.heldPingAck = frame(FrameType.Ping, FrameFlag.Ack, 0, payload);
    if (this.heldPingTimer === undefined) this.heldPingTimer = setTimeout(this.releaseHeldPingAck, this.options.bdpPingAckHoldMs ?? BDP_PING_ACK_HOLD_MS).unref();
    else this.heldPingTimer.refresh();
  }

  private readonly releaseHeldPingAck = (): void => {
    const ack = this.heldPingAck;
    this.heldPingAck = undefined;
    if (ack !== undefined && !this.done) this.send(ack);
  };

  /** Streams open now. */
  get streamCount(): number {
    return this.streams.size;
  }

  /** Refuses new streams (GOAWAY NO_ERROR); the open ones finish, then the connection ends. */
  goAway(): void {
    if (this.goingAway || this.done) return;
    this.goingAway = true;
    this.send(goAwayFrame(this.lastStreamId, ErrorCode.NoError));
    if (this.streams.size === 0) this.endTransport();
  }

  private receive(chunk: Buffer): void {
    if (this.done) return;
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    try {
      if (!this.prefaceSeen) {
        const have = Math.min(this.pending.length, CLIENT_PREFACE.length);
        if (!this.pending.subarray(0, have).equals(CLIENT_PREFACE.subarray(0, have))) throw new ConnectionError(ErrorCode.ProtocolError, "bad connection preface");
        if (have < CLIENT_PREFACE.length) return;
        this.pending = this.pending.subarray(CLIENT_PREFACE.length);
        this.prefaceSeen = true;
      }
      while (this.pending.length >= FRAME_HEADER_BYTES && !this.done) {
        const h = readFrameHeader(this.pending, 0);
        if (h.length > DEFAULT_MAX_FRAME_SIZE) throw new ConnectionError(ErrorCode.FrameSizeError, `frame of ${h.length} bytes`);
        if (this.pending.length < FRAME_HEADER_BYTES + h.length) break;
        const payload = this.pending.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + h.length);
        this.pending = this.pending.subarray(FRAME_HEADER_BYTES + h.length);
        this.onFrame(h.type, h.flags, h.streamId, payload);
      }
    } catch (err) {
      if (!(err instanceof ConnectionError)) throw err;
      this.fail(err.code);
    }
  }

  private onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (!this.settingsSeen && type !== FrameType.Settings) throw new ConnectionError(ErrorCode.ProtocolError, "first frame is not SETTINGS");
    if (this.continuing !== undefined && type !== FrameType.Continuation) throw new ConnectionError(ErrorCode.ProtocolError, "header block interrupted");
    switch (type) {
      case FrameType.Settings:
        return this.onSettings(flags, streamId, payload);
      case FrameType.Headers:
        return this.onHeaders(flags, streamId, payload);
      case FrameType.Continuation:
        return this.onContinuation(flags, streamId, payload);
      case FrameType.Data:
        return this.onData(flags, streamId, payload);
      case FrameType.WindowUpdate:
        return this.onWindowUpdate(streamId, payload);
      case FrameType.Ping:
        if (streamId !== 0) throw new ConnectionError(ErrorCode.ProtocolError, "PING on a stream");
        if (payload.length !== 8) throw new ConnectionError(ErrorCode.FrameSizeError, "PING of the wrong size");
        if ((flags & FrameFlag.Ack) !== 0) return;
        if (payload.equals(GRPC_GO_BDP_PING)) return this.holdPingAck(payload);
        this.send(frame(FrameType.Ping, FrameFlag.Ack, 0, payload));
        return;
      case FrameType.RstStream: {
        if (streamId === 0) throw new ConnectionError(ErrorCode.ProtocolError, "RST_STREAM on stream 0");
        if (payload.length !== 4) throw new ConnectionError(ErrorCode.FrameSizeError, "RST_STREAM of the wrong size");
        if (streamId > this.lastStreamId) throw new ConnectionError(ErrorCode.ProtocolError, "RST_STREAM on an idle stream");
        const stream = this.streams.get(streamId);
        if (stream !== undefined) this.close(stream, payload.readUInt32BE(0) as ErrorCode);
        return;
      }
      case FrameType.GoAway:
        if (streamId !== 0) throw new ConnectionError(ErrorCode.ProtocolError, "GOAWAY on a stream");
        this.goingAway = true;
        if (this.streams.size === 0) this.endTransport();
        return;
      case FrameType.Priority:
        if (streamId === 0) throw new ConnectionError(ErrorCode.ProtocolError, "PRIORITY on stream 0");
        if (payload.length !== 5) this.rst(streamId, ErrorCode.FrameSizeError);
        return;
      case FrameType.PushPromise:
        throw new ConnectionError(ErrorCode.ProtocolError, "PUSH_PROMISE from a client");
      default:
      // Unknown frame types are ignored (RFC 9113 § 4.1).
    }
  }

  private onSettings(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new ConnectionError(ErrorCode.ProtocolError, "SETTINGS on a stream");
    if (flags & FrameFlag.Ack) {
      if (payload.length !== 0) throw new ConnectionError(ErrorCode.FrameSizeError, "SETTINGS ACK with a payload");
      return;
    }
    if (payload.length % 6 !== 0) throw new ConnectionError(ErrorCode.FrameSizeError, "SETTINGS of the wrong size");
    this.settingsSeen = true;
    for (let i = 0; i < payload.length; i += 6) {
      const id = payload.readUInt16BE(i);
      const value = payload.readUInt32BE(i + 2);
      if (id === Setting.InitialWindowSize) {
        if (value > MAX_WINDOW) throw new ConnectionError(ErrorCode.FlowControlError, "SETTINGS_INITIAL_WINDOW_SIZE too large");
        const delta = value - this.peerInitialWindow;
        this.peerInitialWindow = value;
        for (const stream of this.streams.values()) {
          stream.sendWindow += delta;
          if (stream.sendWindow > MAX_WINDOW) throw new ConnectionError(ErrorCode.FlowControlError, "stream window too large");
        }
      } else if (id === Setting.MaxFrameSize) {
        if (value < DEFAULT_MAX_FRAME_SIZE || value > 2 ** 24 - 1) throw new ConnectionError(ErrorCode.ProtocolError, "SETTINGS_MAX_FRAME_SIZE out of range");
        this.peerMaxFrameSize = value;
      } else if (id === Setting.EnablePush && value > 1) {
        throw new ConnectionError(ErrorCode.ProtocolError, "SETTINGS_ENABLE_PUSH not 0 or 1");
      }
    }
    this.send(frame(FrameType.Settings, FrameFlag.Ack, 0));
    for (const stream of this.streams.values()) this.flushStream(stream);
  }

  private onHeaders(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(ErrorCode.ProtocolError, "HEADERS on stream 0");
    let block = payload;
    if (flags & FrameFlag.Padded) block = unpad(block);
    if (flags & FrameFlag.Priority) {
      if (block.length < 5) throw new ConnectionError(ErrorCode.FrameSizeError, "HEADERS too short for its priority");
      block = block.subarray(5);
    }
    if (flags & FrameFlag.EndHeaders) this.onHeaderBlock(streamId, flags, block);
    else this.continuing = { streamId, flags, fragments: [Buffer.from(block)], bytes: block.length };
  }

  private onContinuation(flags: number, streamId: number, payload: Buffer): void {
    const c = this.continuing;
    if (c === undefined || c.streamId !== streamId) throw new ConnectionError(ErrorCode.ProtocolError, "CONTINUATION out of place");
    c.fragments.push(Buffer.from(payload));
    c.bytes += payload.length;
    // A block may be compressed, but never larger than twice the list it decodes to.
    if (c.bytes > 2 * (this.options.maxHeaderListBytes ?? 16 * 1024)) throw new ConnectionError(ErrorCode.EnhanceYourCalm, "header block too large");
    if ((flags & FrameFlag.EndHeaders) === 0) return;
    this.continuing = undefined;
    this.onHeaderBlock(streamId, c.flags, Buffer.concat(c.fragments));
  }

  private onHeaderBlock(streamId: number, flags: number, block: Buffer): void {
    let headers: HeaderList;
    try {
      headers = this.decoder.decode(block);
    } catch (err) {
      if (err instanceof HpackError) throw new ConnectionError(ErrorCode.CompressionError, err.message);
      throw err;
    }
    const endStream = (flags & FrameFlag.EndStream) !== 0;
    const open = this.streams.get(streamId);
    if (open !== undefined) {
      // Trailers: they must end the stream.
      if (!endStream || open.remoteClosed) throw new ConnectionError(ErrorCode.ProtocolError, "HEADERS after the request headers without END_STREAM");
      this.remoteEnd(open);
      return;
    }
    if (streamId % 2 === 0 || streamId <= this.lastStreamId) throw new ConnectionError(ErrorCode.ProtocolError, `HEADERS on stream ${streamId}`);
    this.lastStreamId = streamId;
    if (this.goingAway) return this.rst(streamId, ErrorCode.RefusedStream);
    if (this.streams.size >= this.maxConcurrentStreams) return this.rst(streamId, ErrorCode.RefusedStream);
    const stream = new ServerStream(this, streamId, headers, this.peerInitialWindow, this.streamWindow);
    this.streams.set(streamId, stream);
    this.options.onStream(stream);
    if (endStream) this.remoteEnd(stream);
  }

  private onData(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(ErrorCode.ProtocolError, "DATA on stream 0");
    // Flow control counts the whole payload, padding included.
    this.receiveAvailable -= payload.length;
    if (this.receiveAvailable < 0) throw new ConnectionError(ErrorCode.FlowControlError, "DATA past the connection window");
    this.creditConnection(payload.length);
    const data = flags & FrameFlag.Padded ? unpad(payload) : payload;
    const stream = this.streams.get(streamId);
    if (stream === undefined || stream.remoteClosed) {
      if (streamId > this.lastStreamId) throw new ConnectionError(ErrorCode.ProtocolError, "DATA on an idle stream");
      this.rst(streamId, ErrorCode.StreamClosed);
      return;
    }
    stream.receiveAvailable -= payload.length;
    if (stream.receiveAvailable < 0) return this.resetStream(stream, ErrorCode.FlowControlError);
    // Padding is never the handler's to consume: its credit comes back at once.
    if (data.length < payload.length) stream.consumed(payload.length - data.length);
    if (data.length > 0) {
      if (stream.onData !== undefined) stream.onData(data);
      // Nobody reads it (the response is done, or the handler ignores the body): credit it back.
      else stream.consumed(data.length);
    }
    if (flags & FrameFlag.EndStream) this.remoteEnd(stream);
  }

  /** The connection window is credited as data arrives: what bounds a stream's buffer is its own window. */
  private creditConnection(bytes: number): void {
    this.receiveUnacknowledged += bytes;
    if (this.receiveUnacknowledged >= this.connectionWindow / 2) {
      this.windowUpdate(0, this.receiveUnacknowledged);
      this.receiveAvailable += this.receiveUnacknowledged;
      this.receiveUnacknowledged = 0;
    }
  }

  private onWindowUpdate(streamId: number, payload: Buffer): void {
    if (payload.length !== 4) throw new ConnectionError(ErrorCode.FrameSizeError, "WINDOW_UPDATE of the wrong size");
    const increment = payload.readUInt32BE(0) & 0x7fffffff;
    if (streamId === 0) {
      if (increment === 0) throw new ConnectionError(ErrorCode.ProtocolError, "WINDOW_UPDATE of 0");
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW) throw new ConnectionError(ErrorCode.FlowControlError, "connection window too large");
      for (const stream of this.streams.values()) this.flushStream(stream);
      return;
    }
    const stream = this.streams.get(streamId);
    if (stream === undefined) return;
    if (increment === 0) return this.resetStream(stream, ErrorCode.ProtocolError);
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) return this.resetStream(stream, ErrorCode.FlowControlError);
    this.flushStream(stream);
  }

  private remoteEnd(stream: ServerStream): void {
    stream.remoteClosed = true;
    stream.onEnd?.();
    this.maybeClose(stream);
  }

  /** @internal */
  sendHeaders(stream: ServerStream, headers: HeaderList, endStream: boolean): void {
    if (stream.closed || this.done) return;
    const block = encodeHeaders(pseudoHeadersFirst(headers));
    const out: Buffer[] = [];
    // A block larger than a frame continues in CONTINUATION frames.
    for (let at = 0, first = true; first || at < block.length; first = false) {
      const piece = block.subarray(at, at + this.peerMaxFrameSize);
      at += piece.length;
      const last = at >= block.length;
      const type = first ? FrameType.Headers : FrameType.Continuation;
      out.push(frame(type, (last ? FrameFlag.EndHeaders : 0) | (first && endStream ? FrameFlag.EndStream : 0), stream.id, piece));
    }
    this.send(out.length === 1 ? out[0]! : Buffer.concat(out));
    if (endStream) {
      stream.ended = null;
      this.localEnd(stream);
    }
  }

  /** @internal Sends what the windows allow of a stream's queue, then its end once the queue is empty. */
  flushStream(stream: ServerStream): void {
    if (stream.closed || this.done) return;
    const out: Buffer[] = [];
    while (stream.queued.length > 0) {
      const allowed = Math.min(this.sendWindow, stream.sendWindow, this.peerMaxFrameSize);
      if (allowed <= 0) break;
      const head = stream.queued[0]!;
      const piece = head.length <= allowed ? head : head.subarray(0, allowed);
      if (piece === head) stream.queued.shift();
      else stream.queued[0] = head.subarray(allowed);
      this.sendWindow -= piece.length;
      stream.sendWindow -= piece.length;
      out.push(frame(FrameType.Data, 0, stream.id, piece));
      stream.sent(piece.length);
    }
    const ending = stream.queued.length === 0 && stream.ended !== undefined;
    if (ending && stream.ended === null) out.push(frame(FrameType.Data, FrameFlag.EndStream, stream.id));
    if (out.length > 0) this.send(out.length === 1 ? out[0]! : Buffer.concat(out));
    if (!ending) return;
    if (stream.ended !== null) this.sendHeaders(stream, stream.ended!, true);
    else this.localEnd(stream);
  }

  /**
   * The response is complete. A request still being sent may finish (a bidi call's client ends
   * its side once it read the end; its DATA is credited and dropped meanwhile); a handler that
   * wants none of it resets the stream with NO_ERROR (RFC 9113 § 8.1).
   */
  private localEnd(stream: ServerStream): void {
    stream.closed = true;
    stream.onData = undefined;
    this.maybeClose(stream);
  }

  private maybeClose(stream: ServerStream): void {
    if (!stream.closed || !stream.remoteClosed) return;
    this.streams.delete(stream.id);
    this.afterStreamGone();
  }

  /** @internal */
  resetStream(stream: ServerStream, code: ErrorCode): void {
    if (stream.closed && stream.remoteClosed) return;
    this.rst(stream.id, code);
    this.close(stream, code);
  }

  private close(stream: ServerStream, code: ErrorCode): void {
    if (stream.closed && stream.remoteClosed) return;
    stream.closed = true;
    stream.remoteClosed = true;
    stream.queued.length = 0;
    stream.sent(stream.queuedBytes);
    this.streams.delete(stream.id);
    stream.onReset?.(code);
    this.afterStreamGone();
  }

  private afterStreamGone(): void {
    if (this.goingAway && this.streams.size === 0 && !this.done) this.endTransport();
  }

  private endTransport(): void {
    this.flushOutgoing();
    this.transport.end();
  }

  /** @internal */
  windowUpdate(streamId: number, increment: number): void {
    if (!this.done) this.send(frame(FrameType.WindowUpdate, 0, streamId, u32(increment)));
  }

  private rst(streamId: number, code: ErrorCode): void {
    if (!this.done) this.send(frame(FrameType.RstStream, 0, streamId, u32(code)));
  }

  private fail(code: ErrorCode): void {
    if (this.done) return;
    this.send(goAwayFrame(this.lastStreamId, code));
    this.endTransport();
    this.finish(code);
  }

  /** The connection is over: every open stream learns it. */
  private finish(code: ErrorCode): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.heldPingTimer);
    for (const stream of [...this.streams.values()]) this.close(stream, code === ErrorCode.NoError ? ErrorCode.Cancel : code);
  }
}

function goAwayFrame(lastStreamId: number, code: ErrorCode): Buffer {
  const payload = Buffer.allocUnsafe(8);
  payload.writeUInt32BE(lastStreamId, 0);
  payload.writeUInt32BE(code, 4);
  return frame(FrameType.GoAway, 0, 0, payload);
}

/** A padded payload without its pad length byte and padding. */
function unpad(payload: Buffer): Buffer {
  if (payload.length < 1) throw new ConnectionError(ErrorCode.FrameSizeError, "padded frame without its pad length");
  const pad = payload[0]!;
  if (pad >= payload.length) throw new ConnectionError(ErrorCode.ProtocolError, "padding longer than the frame");
  return payload.subarray(1, payload.length - pad);
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/** Pseudo-header fields must come before all others in a block (RFC 9113 § 8.3). */
function pseudoHeadersFirst(headers: HeaderList): HeaderList {
  let regularSeen = false;
  for (const [name] of headers) {
    if (!name.startsWith(":")) regularSeen = true;
    else if (regularSeen) return [...headers.filter(([n]) => n.startsWith(":")), ...headers.filter(([n]) => !n.startsWith(":"))];
  }
  return headers;
}
