import { EventEmitter } from "node:events";
import type { Duplex } from "node:stream";
import { YamuxError, YamuxErrorCode } from "./errors.js";
import { Flag, FrameType, GoAwayCode, HEADER_SIZE, INITIAL_STREAM_WINDOW, MAX_UINT32, SESSION_STREAM_ID, type FrameHeader } from "./frame.js";
import { FrameDecoder, type FrameHandler } from "./frame-decoder.js";
import { FrameWriter, type WriterOwner } from "./frame-writer.js";
import { sessionConfig, type SessionConfig, type SessionOptions } from "./session-config.js";
import { FRAME_KEYS, newSessionCounters, type SessionCounters } from "./session-counters.js";
import { PendingPings } from "./session-pings.js";
import { Stream, type StreamHost } from "./stream.js";

/**
 * Replies (pongs, RSTs) we write while the peer is not reading ours before we stop reading its
 * input: a peer flooding pings or SYNs without reading cannot grow our memory past this.
 */
const MAX_UNREAD_REPLY_BYTES = 1024 * 1024;

/**
 * A yamux session (hashicorp/yamux compatible) over any Node Duplex.
 *
 * Events:
 * - `'stream'` (stream: Stream): the peer opened a stream; it is already ACKed.
 * - `'error'` (error: YamuxError): the session failed (protocol error, keepalive timeout,
 *   transport error, peer's GoAway with an error code). Emitted only when listened to, so an
 *   untrusted peer can never turn it into an uncaught exception; see also `error`.
 * - `'close'` (): the session is over and every stream is destroyed. Emitted once.
 *
 * No logging happens here: errors and `counters` are for the owner to log and export.
 */
export class Session extends EventEmitter implements FrameHandler, StreamHost, WriterOwner {
  /** Counters for logs and metrics. */
  readonly counters: SessionCounters = newSessionCounters();
  private readonly transport: Duplex;
  private readonly config: SessionConfig;
  private readonly streams = new Map<number, Stream>();
  private readonly decoder: FrameDecoder;
  private readonly writer: FrameWriter;
  private nextLocalId: number;
  private highestRemoteId = 0;
  /** Where the body of the Data frame being decoded goes (undefined: discarded). */
  private payloadStream: Stream | undefined;
  private payloadLeft = 0;
  private payloadFlags = 0;
  /** Credit granted plus data unread, all streams together, against `config.maxBufferedBytes`. */
  private committed = 0;
  /** Streams waiting for budget to grant their readers' credit; made when first needed. */
  private starving: Set<Stream> | undefined;
  /** Made on the first ping: an idle session should cost little. */
  private pings: PendingPings | undefined;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  private drained: (() => void) | undefined;
  private remoteGoAway = false;
  private unreadReplyBytes = 0;
  private inputPaused = false;
  private received = 0;
  /** True once the session is over: streams destroyed, transport ended, 'close' emitted. */
  private terminated = false;
  private failure: YamuxError | undefined;

  /** Runs a session over `transport`, which it owns from now on. Throws a RangeError for bad options. */
  constructor(transport: Duplex, options: SessionOptions) {
    super();
    this.transport = transport;
    this.config = sessionConfig(options);
    this.nextLocalId = this.config.isClient ? 1 : 2;
    // The session is the decoder's handler, the writer's owner and its streams' host itself:
    // no per-session closures for them, as idle sessions should cost little.
    this.writer = new FrameWriter(transport, this.config.writeHighWaterMark, this, this.config.maxMessageBytes);
    this.decoder = new FrameDecoder(this);
    transport.on("data", this.onTransportData);
    transport.on("end", this.onTransportEnd);
    transport.on("close", this.onTransportEnd);
    transport.on("error", this.onTransportError);
    if (this.config.keepaliveIntervalMs > 0) this.scheduleKeepalive();
  }

  /** Bytes the peer has sent so far (frames and their payloads, as read from the transport). */
  get bytesReceived(): number {
    return this.received;
  }

  /** Streams in the table: open, or half-closed with the other side still to finish. */
  get streamCount(): number {
    return this.streams.size;
  }

  /** True once the session is closed or closing (no new streams either way). */
  get closed(): boolean {
    return this.terminated || this.closing !== undefined;
  }

  /** True once the peer sent GoAway (it is draining: it takes no new streams) or the session closed. */
  get goneAway(): boolean {
    return this.remoteGoAway || this.closed;
  }

  /** Why the session failed, if it did. */
  get error(): YamuxError | undefined {
    return this.failure;
  }

  /**
   * Opens a stream (SYN goes out with the next flush). Returns at once: writes up to the spec's
   * initial window go out before the ACK. Throws a `YamuxError` after close or the peer's GoAway,
   * at the stream limit, or when stream ids are used up.
   */
  open(): Stream {
    if (this.closed) throw new YamuxError(YamuxErrorCode.SessionClosed, "yamux session is closed");
    if (this.remoteGoAway) {
      throw new YamuxError(YamuxErrorCode.RemoteGoAway, "peer sent GoAway: not accepting new streams");
    }
    if (this.streams.size >= this.config.maxStreams) {
      throw new YamuxError(YamuxErrorCode.StreamsExhausted, `stream limit reached (${this.config.maxStreams})`);
    }
    const id = this.nextLocalId;
    if (id > MAX_UINT32) throw new YamuxError(YamuxErrorCode.StreamsExhausted, "stream ids exhausted");
    this.nextLocalId += 2;
    const stream = this.createStream(id, true);
    this.counters.streamsOpened++;
    this.sendFrame(FrameType.WindowUpdate, Flag.SYN, id, this.config.initialWindow - INITIAL_STREAM_WINDOW);
    return stream;
  }

  /** Sends a ping and resolves with the round trip in milliseconds; rejects if the session ends. */
  ping(): Promise<number> {
    if (this.terminated) return Promise.reject(new YamuxError(YamuxErrorCode.SessionClosed, "yamux session is closed"));
    this.counters.pingsSent++;
    const { id, rtt } = (this.pings ??= new PendingPings()).start();
    this.sendFrame(FrameType.Ping, Flag.SYN, SESSION_STREAM_ID, id);
    return rtt;
  }

  /**
   * Sends GoAway with `code`, refuses new streams, lets open streams finish for up to
   * `closeTimeoutMs`, then destroys the rest (with `ERR_YAMUX_CLOSE_TIMEOUT`) and ends the
   * transport. A stream has finished once our side of it ended (FIN sent): a server has then
   * answered all it will, and a busy peer's own FIN can take seconds to come. (So a client
   * awaiting answers on streams it half-closed should not close the session until they came.)
   * Resolves when the session is closed; calling it again returns the same promise.
   */
  close(code: GoAwayCode = GoAwayCode.Normal): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    if (this.terminated) return Promise.resolve();
    this.sendFrame(FrameType.GoAway, 0, SESSION_STREAM_ID, code);
    this.closing = new Promise<void>((resolve) => {
      const finish = (timedOut: boolean): void => {
        clearTimeout(timer);
        this.drained = undefined;
        this.terminate(undefined, timedOut ? new YamuxError(YamuxErrorCode.CloseTimeout, "yamux session closed before the stream finished") : undefined);
        resolve();
      };
      const timer = setTimeout(finish, this.config.closeTimeoutMs, true);
      this.drained = () => finish(false);
      if (this.everyStreamEndedHere()) finish(false);
    });
    return this.closing;
  }

  /**
   * Destroys every stream at once and ends the transport. With `error`, streams are destroyed
   * with it (wrapped as `ERR_YAMUX_SESSION_CLOSED` unless it is a `YamuxError`) and 'error' is
   * emitted; without, they just close, as sockets do on `destroy()`.
   */
  destroy(error?: Error): void {
    const cause = error === undefined || error instanceof YamuxError ? error : toSessionError(error);
    this.terminate(cause, cause);
  }

  // ---- receiving ----

  private readonly onTransportData = (chunk: Buffer | string): void => {
    if (this.terminated) return;
    this.received += chunk.length;
    this.decoder.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
    if (this.unreadReplyBytes > MAX_UNREAD_REPLY_BYTES && !this.inputPaused && !this.terminated) {
      this.inputPaused = true;
      this.transport.pause();
    }
  };

  /** @internal The transport drained: resume reading if a reply flood paused it. */
  onWriterDrain(): void {
    this.unreadReplyBytes = 0;
    if (this.inputPaused) {
      this.inputPaused = false;
      this.transport.resume();
    }
  }

  private readonly onTransportEnd = (): void => {
    if (!this.terminated) this.destroy(new YamuxError(YamuxErrorCode.SessionClosed, "yamux transport closed"));
  };

  private readonly onTransportError = (error: Error): void => {
    if (!this.terminated) this.destroy(new YamuxError(YamuxErrorCode.SessionClosed, `yamux transport failed: ${error.message}`, { cause: error }));
  };

  /** @internal A decoded header (FrameHandler). */
  onFrame(header: Readonly<FrameHeader>): void {
    const { type, flags, streamId, length } = header;
    this.counters.framesIn[FRAME_KEYS[type]!]++;
    if (type === FrameType.Ping || type === FrameType.GoAway) {
      if (streamId !== SESSION_STREAM_ID) return this.protocolError(`${FRAME_KEYS[type]} frame on stream ${streamId}`);
      return type === FrameType.Ping ? this.onPing(flags, length) : this.onGoAway(length);
    }
    if (streamId === SESSION_STREAM_ID) return this.protocolError("stream frame on stream 0");
    let stream = this.streams.get(streamId);
    if (flags & Flag.SYN) {
      if (!this.acceptStream(streamId)) {
        if (!this.terminated && type === FrameType.Data) this.expectPayload(undefined, length, 0);
        return;
      }
      stream = this.streams.get(streamId);
    } else if (stream === undefined && this.neverOpened(streamId)) {
      return this.protocolError(`frame for stream ${streamId}, which was never opened`);
    }
    if (type === FrameType.WindowUpdate) {
      if (stream === undefined) return; // closed or reset here; the peer had not seen it yet
      if (stream.peerWindow + length > MAX_UINT32) {
        return this.protocolError(`window update overflows the send window of stream ${streamId}`);
      }
      stream.growSendWindow(length);
      stream.applyFlags(flags);
      return;
    }
    // Data: check the header before a single body byte is accepted.
    if (stream === undefined) {
      if (length > this.config.maxWindow) return this.protocolError(`data frame of ${length} bytes exceeds any window`);
      return this.expectPayload(undefined, length, 0);
    }
    if (!stream.admitData(length)) {
      return this.protocolError(`data frame of ${length} bytes exceeds the window of stream ${streamId}`);
    }
    if (length > 0 && stream.remoteEnded) {
      this.counters.protocolErrors++;
      stream.fail(`data after FIN on stream ${streamId}`);
      return this.expectPayload(undefined, length, 0);
    }
    this.expectPayload(stream, length, flags);
  }

  private expectPayload(stream: Stream | undefined, length: number, flags: number): void {
    if (length === 0) {
      stream?.applyFlags(flags);
      return;
    }
    this.payloadStream = stream;
    this.payloadLeft = length;
    this.payloadFlags = flags;
  }

  /** @internal A piece of a Data body (FrameHandler). */
  onPayload(piece: Buffer): void {
    this.counters.bytesIn += piece.length;
    this.payloadLeft -= piece.length;
    const stream = this.payloadStream;
    if (stream === undefined) return;
    stream.deliver(piece);
    if (this.payloadLeft === 0) {
      this.payloadStream = undefined;
      stream.applyFlags(this.payloadFlags);
    }
  }

  /** @internal Broken framing (FrameHandler). */
  onDecodeError(message: string): void {
    this.protocolError(message);
  }

  /** Handles a SYN; returns true if the stream is now in the table. */
  private acceptStream(id: number): boolean {
    const remoteParity = this.config.isClient ? 0 : 1;
    if (id % 2 !== remoteParity) {
      this.protocolError(`peer opened stream ${id} with our parity`);
      return false;
    }
    if (this.streams.has(id)) {
      this.protocolError(`peer opened stream ${id} twice`);
      return false;
    }
    if (id > this.highestRemoteId) this.highestRemoteId = id;
    if (this.closed || this.streams.size >= this.config.maxStreams || this.uncommitted < this.config.initialWindow) {
      this.counters.streamsRefused++;
      this.reply(FrameType.WindowUpdate, Flag.RST, id, 0);
      return false;
    }
    const stream = this.createStream(id, false);
    this.counters.streamsAccepted++;
    this.sendFrame(FrameType.WindowUpdate, Flag.ACK, id, this.config.initialWindow - INITIAL_STREAM_WINDOW);
    this.emit("stream", stream);
    return !stream.destroyed;
  }

  /** True if no SYN ever announced this id (ids only grow, hashicorp and libp2p alike). */
  private neverOpened(id: number): boolean {
    const local = id % 2 === (this.config.isClient ? 1 : 0);
    return local ? id >= this.nextLocalId : id > this.highestRemoteId;
  }

  private onPing(flags: number, opaque: number): void {
    if (flags & Flag.SYN) {
      this.counters.pingsReceived++;
      this.reply(FrameType.Ping, Flag.ACK, SESSION_STREAM_ID, opaque);
      return;
    }
    if (flags & Flag.ACK) this.pings?.answered(opaque);
  }

  private onGoAway(code: number): void {
    if (code === GoAwayCode.Normal) {
      this.remoteGoAway = true;
      return;
    }
    if (code === GoAwayCode.ProtocolError || code === GoAwayCode.InternalError) {
      const what = code === GoAwayCode.ProtocolError ? "protocol error" : "internal error";
      this.destroy(new YamuxError(YamuxErrorCode.RemoteError, `peer went away: ${what}`));
      return;
    }
    this.protocolError(`GoAway with unknown code ${code}`);
  }

  /** Session-level protocol error: GoAway(protocol error), then close. */
  private protocolError(message: string): void {
    if (this.terminated) return;
    this.counters.protocolErrors++;
    this.sendFrame(FrameType.GoAway, 0, SESSION_STREAM_ID, GoAwayCode.ProtocolError);
    this.destroy(new YamuxError(YamuxErrorCode.Protocol, message));
  }

  // ---- sending ----

  /** @internal Queues a frame, counted (StreamHost). */
  sendFrame(type: FrameType, flags: number, id: number, length: number, payload?: Buffer): void {
    if (this.terminated) return;
    this.counters.framesOut[FRAME_KEYS[type]]++;
    if (payload !== undefined) this.counters.bytesOut += payload.length;
    this.writer.frame(type, flags, id, length, payload);
  }

  /** A frame the peer's input caused (pong, refusal); counted against MAX_UNREAD_REPLY_BYTES. */
  private reply(type: FrameType, flags: number, id: number, length: number): void {
    if (this.writer.blocked) this.unreadReplyBytes += HEADER_SIZE;
    this.sendFrame(type, flags, id, length);
  }

  // ---- lifecycle ----

  /** @internal (StreamHost) */
  get uncommitted(): number {
    return this.config.maxBufferedBytes - this.committed;
  }

  /** @internal (StreamHost) */
  commit(stream: Stream, delta: number): void {
    this.committed += delta;
    if (delta >= 0 || this.starving === undefined) return;
    if (!this.streams.has(stream.id)) this.starving.delete(stream);
    for (const waiting of this.starving) {
      if (this.uncommitted <= 0) return;
      this.starving.delete(waiting);
      waiting.creditReader();
    }
  }

  /** @internal (StreamHost) */
  starved(stream: Stream): void {
    (this.starving ??= new Set()).add(stream);
  }

  private createStream(id: number, outbound: boolean): Stream {
    const stream = new Stream(this, id, {
      outbound,
      receiveWindow: this.config.initialWindow,
      maxReceiveWindow: this.config.maxWindow,
      maxFramePayload: this.config.maxFramePayload,
    });
    this.streams.set(id, stream);
    this.committed += this.config.initialWindow;
    return stream;
  }

  /** @internal Calls back when the write queue has room (StreamHost). */
  whenWritable(callback: () => void): void {
    this.writer.whenWritable(callback);
  }

  /** @internal Drops a finished stream from the table (StreamHost). */
  forget(stream: Stream): void {
    if (this.streams.get(stream.id) !== stream) return;
    this.streams.delete(stream.id);
    this.starving?.delete(stream);
    if (this.drained !== undefined && this.everyStreamEndedHere()) this.drained();
  }

  /** @internal Our side of a stream ended (StreamHost): a closing session may be done. */
  endedHere(): void {
    if (this.drained !== undefined && this.everyStreamEndedHere()) this.drained();
  }

  /** True when we sent FIN on every stream in the table (only checked while closing). */
  private everyStreamEndedHere(): boolean {
    for (const stream of this.streams.values()) if (!stream.endedHere) return false;
    return true;
  }

  private scheduleKeepalive(): void {
    const { keepaliveIntervalMs, keepaliveTimeoutMs } = this.config;
    this.keepaliveTimer = setTimeout(() => {
      const timeout = setTimeout(() => {
        this.destroy(new YamuxError(YamuxErrorCode.KeepaliveTimeout, `keepalive ping not answered in ${keepaliveTimeoutMs} ms`));
      }, keepaliveTimeoutMs);
      this.keepaliveTimer = timeout;
      this.ping().then(
        () => {
          clearTimeout(timeout);
          if (!this.terminated) this.scheduleKeepalive();
        },
        () => clearTimeout(timeout),
      );
    }, keepaliveIntervalMs);
  }

  /**
   * Ends the session once: flushes what is queued (a GoAway among it), ends the transport,
   * destroys the streams left with `streamError`, fails pending pings, emits 'error' (if
   * `cause` and listened to) and 'close'.
   */
  private terminate(cause: YamuxError | undefined, streamError: YamuxError | undefined): void {
    if (this.terminated) return;
    this.terminated = true;
    this.failure = cause;
    this.decoder.stop();
    clearTimeout(this.keepaliveTimer);
    this.writer.flush();
    this.writer.close();
    // A close() waiting for streams to finish ends now: they are gone with the session.
    const finishClose = this.drained;
    this.drained = undefined;
    const transport = this.transport;
    if (!transport.destroyed && !transport.writableEnded) transport.end();
    if (this.inputPaused) transport.resume(); // keep discarding input so nothing piles up
    for (const stream of [...this.streams.values()]) stream.abort(streamError);
    this.streams.clear();
    this.pings?.failAll(streamError ?? new YamuxError(YamuxErrorCode.SessionClosed, "yamux session closed"));
    if (cause !== undefined && this.listenerCount("error") > 0) this.emit("error", cause);
    this.emit("close");
    finishClose?.();
  }
}

function toSessionError(error: Error): YamuxError {
  return new YamuxError(YamuxErrorCode.SessionClosed, error.message, { cause: error });
}
