import { Duplex } from "node:stream";
import { Flag, FrameType, INITIAL_STREAM_WINDOW } from "./frame.js";
import { YamuxError, YamuxErrorCode } from "./errors.js";

/** What a stream needs from its session. Internal to the yamux package. */
export interface StreamHost {
  /** Queues a frame for this stream (counted, coalesced). */
  sendFrame(type: FrameType, flags: number, streamId: number, length: number, payload?: Buffer): void;
  /** Calls back when the session's write queue has room (write backpressure). */
  whenWritable(callback: () => void): void;
  /** The stream is done on the wire; drop it from the table. Idempotent. */
  forget(stream: Stream): void;
  /** Our side of a stream ended (FIN sent); the peer's may still be open. */
  endedHere(): void;
  /** The stream's committed bytes (credit granted plus data unread) changed by `delta`. */
  commit(stream: Stream, delta: number): void;
  /** Bytes the session can still grant all its streams together. */
  readonly uncommitted: number;
  /** The stream owes its peer credit the budget had no room for: call its `creditReader` once there is. */
  starved(stream: Stream): void;
}

/** @internal Per-stream settings handed down by the session. */
export interface StreamSettings {
  /** We opened it (SYN sent) rather than accepted it. */
  outbound: boolean;
  /** Receive window announced at open/accept (at least the spec's 256 KiB). */
  receiveWindow: number;
  /** The receive window may grow up to this while the reader keeps up. */
  maxReceiveWindow: number;
  /** Largest payload of one Data frame we send, so a frame fits in the session's largest write. */
  maxFramePayload: number;
}

/**
 * One yamux stream as a Node Duplex (half-close allowed).
 *
 * - `end()` sends FIN once written data is queued; a received FIN ends the readable side.
 * - `destroy()` sends RST unless both FINs were exchanged; a received RST destroys the stream
 *   with a `YamuxError` (`ERR_YAMUX_STREAM_RESET`, or `ERR_YAMUX_STREAM_REFUSED` before the ACK).
 * - Flow control is backpressure: the receive window is credited only as the reader consumes,
 *   and writes wait for the peer's window.
 *
 * It also has the no-op socket methods node:http and node:http2 call on a connection.
 */
export class Stream extends Duplex {
  /** Stream id: odd when the client opened it, even when the server did. */
  readonly id: number;
  private readonly host: StreamHost;
  private readonly outbound: boolean;
  private readonly maxReceiveWindow: number;
  private readonly maxFramePayload: number;
  /** Current receive window size; grows while the reader keeps up, never shrinks. */
  private receiveWindow: number;
  /** Bytes the peer may still send before our next WindowUpdate. */
  private receiveCredit: number;
  /** Bytes we may still send before the peer's next WindowUpdate. */
  private sendWindow = INITIAL_STREAM_WINDOW;
  private pendingChunk: Buffer | undefined;
  private pendingCallback: ((error?: Error | null) => void) | undefined;
  private acknowledged: boolean;
  private localFin = false;
  private remoteFin = false;
  /** No frames may be sent any more (peer reset it, or the session is gone). */
  private silenced = false;
  /** Credit granted plus data unread, as last reported to the session's budget. */
  private committed: number;
  /** Runs while `setTimeout` asked for an idle timeout; refreshed by every byte in or out. */
  private idleTimer: NodeJS.Timeout | undefined;

  /** @internal Created by the session only. */
  constructor(host: StreamHost, id: number, settings: StreamSettings) {
    super({ allowHalfOpen: true, emitClose: true, autoDestroy: true, decodeStrings: true });
    this.host = host;
    this.id = id;
    this.outbound = settings.outbound;
    this.acknowledged = !settings.outbound;
    this.receiveWindow = settings.receiveWindow;
    this.receiveCredit = settings.receiveWindow;
    this.committed = settings.receiveWindow;
    this.maxReceiveWindow = settings.maxReceiveWindow;
    this.maxFramePayload = settings.maxFramePayload;
  }

  /** @internal True once both sides sent FIN. */
  get finished(): boolean {
    return this.localFin && this.remoteFin;
  }

  /**
   * @internal A Data frame of `length` bytes is arriving: charge it to the window.
   * Returns false when it exceeds the window (a session-level protocol error).
   */
  admitData(length: number): boolean {
    if (length > this.receiveCredit) return false;
    this.receiveCredit -= length;
    return true;
  }

  /** @internal True once we sent FIN (every byte we write went out before it). */
  get endedHere(): boolean {
    return this.localFin;
  }

  /** @internal True when the peer already sent FIN, so data would break the protocol. */
  get remoteEnded(): boolean {
    return this.remoteFin;
  }

  /** @internal A piece of admitted Data. */
  deliver(piece: Buffer): void {
    if (this.destroyed) return;
    this.idleTimer?.refresh();
    this.push(piece);
    this.recommit();
    this.creditReader(); // a flowing reader may have taken it already
  }

  /** @internal WindowUpdate delta; the session checked it cannot overflow u32. */
  growSendWindow(delta: number): void {
    this.sendWindow += delta;
    if (delta > 0) this.pump();
  }

  /** @internal The send window a WindowUpdate would add to (for the overflow check). */
  get peerWindow(): number {
    return this.sendWindow;
  }

  /** @internal Applies ACK, FIN and RST from a received frame. */
  applyFlags(flags: number): void {
    if (flags & Flag.ACK) this.acknowledged = true;
    if (flags & Flag.RST) {
      this.silenced = true;
      const refused = this.outbound && !this.acknowledged;
      this.destroy(
        refused
          ? new YamuxError(YamuxErrorCode.StreamRefused, `stream ${this.id} refused by peer`)
          : new YamuxError(YamuxErrorCode.StreamReset, `stream ${this.id} reset by peer`),
      );
      return;
    }
    if (flags & Flag.FIN && !this.remoteFin) {
      this.remoteFin = true;
      this.push(null);
      if (this.localFin) this.host.forget(this);
    }
  }

  /** @internal Stream-level protocol error: reset it. */
  fail(message: string): void {
    this.destroy(new YamuxError(YamuxErrorCode.Protocol, message));
  }

  /** @internal The session is gone: close (with `error` if given) without sending anything. */
  abort(error: Error | undefined): void {
    this.silenced = true;
    this.destroy(error);
  }

  override _read(): void {
    this.creditReader();
  }

  /**
   * Every consumer (flowing mode, `'readable'` + `read()`, async iteration, pipe) takes data
   * through `read()`; `_read` alone is not enough, Node calls it before removing what it reads.
   */
  override read(size?: number): any {
    const chunk: unknown = super.read(size);
    if (chunk !== null) {
      this.recommit();
      this.creditReader();
    }
    return chunk;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.enqueue(chunk, callback);
  }

  override _writev(
    chunks: { chunk: Buffer; encoding: BufferEncoding }[],
    callback: (error?: Error | null) => void,
  ): void {
    // Corked writes (http2 writes frame headers and bodies separately) become one Data frame.
    this.enqueue(Buffer.concat(chunks.map((c) => c.chunk)), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.localFin = true;
    if (!this.silenced) this.host.sendFrame(FrameType.WindowUpdate, Flag.FIN, this.id, 0);
    if (this.remoteFin) this.host.forget(this);
    else this.host.endedHere();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.silenced && !this.finished) this.host.sendFrame(FrameType.WindowUpdate, Flag.RST, this.id, 0);
    this.silenced = true;
    this.pendingChunk = undefined;
    this.pendingCallback = undefined;
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    this.host.commit(this, -this.committed);
    this.committed = 0;
    this.host.forget(this);
    callback(error);
  }

  private enqueue(chunk: Buffer, callback: (error?: Error | null) => void): void {
    this.pendingChunk = chunk;
    this.pendingCallback = callback;
    this.pump();
  }

  /** Sends as much of the pending chunk as the peer's window allows, then releases the writer. */
  private pump(): void {
    let chunk = this.pendingChunk;
    if (chunk === undefined || this.silenced) return;
    this.idleTimer?.refresh();
    while (chunk.length > 0 && this.sendWindow > 0) {
      const n = Math.min(chunk.length, this.sendWindow, this.maxFramePayload);
      this.host.sendFrame(FrameType.Data, 0, this.id, n, n === chunk.length ? chunk : chunk.subarray(0, n));
      this.sendWindow -= n;
      chunk = chunk.subarray(n);
    }
    if (chunk.length > 0) {
      this.pendingChunk = chunk; // resumes on the peer's WindowUpdate
      return;
    }
    const callback = this.pendingCallback!;
    this.pendingChunk = undefined;
    this.pendingCallback = undefined;
    this.host.whenWritable(callback);
  }

  /**
   * Gives the peer credit for what the reader consumed, once that is at least half the window
   * (as hashicorp/yamux does, so updates stay rare). A paused reader grants nothing.
   */
  /** @internal Grants what the reader consumed, within the session's budget: the session calls it again when room frees. */
  creditReader(): void {
    if (this.silenced || this.remoteFin) return;
    const buffered = this.readableLength;
    let window = this.receiveWindow;
    if (window - buffered - this.receiveCredit < window / 2) return;
    const room = this.host.uncommitted;
    // The reader keeps up and the sender used half the window: the window limits throughput.
    if (buffered === 0 && window < this.maxReceiveWindow && room >= window) {
      window = Math.min(window * 2, this.maxReceiveWindow);
      this.receiveWindow = window;
    }
    const credit = Math.min(window - buffered - this.receiveCredit, room);
    if (credit <= 0) {
      this.host.starved(this);
      return;
    }
    this.receiveCredit += credit;
    this.recommit();
    this.host.sendFrame(FrameType.WindowUpdate, 0, this.id, credit);
  }

  /** Reports a change of credit plus unread data to the session's budget. */
  private recommit(): void {
    if (this.silenced) return;
    const now = this.receiveCredit + this.readableLength;
    const delta = now - this.committed;
    if (delta === 0) return;
    this.committed = now;
    this.host.commit(this, delta);
  }

  // Socket look-alikes: node:http and node:http2 call these on a connection.

  /** No-op (a yamux stream has no socket options); returns this. */
  setNoDelay(_noDelay?: boolean): this {
    return this;
  }

  /** No-op (keepalive is the session's business); returns this. */
  setKeepAlive(_enable?: boolean, _initialDelay?: number): this {
    return this;
  }

  /**
   * As `net.Socket#setTimeout`: after `timeout` ms without a byte read or written, 'timeout' is
   * emitted (the stream stays open; the listener decides). 0 turns it off; `callback` is added as
   * a one-time 'timeout' listener (removed again by a 0). node:http uses it for its keep-alive
   * and idle timeouts, so HTTP/1.1 in a tunnel gets the same ones as on a TCP socket.
   */
  setTimeout(timeout: number, callback?: () => void): this {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (timeout === 0) {
      if (callback !== undefined) this.off("timeout", callback);
      return this;
    }
    if (callback !== undefined) this.once("timeout", callback);
    if (!this.destroyed) {
      this.idleTimer = setTimeout(() => this.emit("timeout"), timeout);
      this.idleTimer.unref();
    }
    return this;
  }

  /** No-op; returns this. */
  ref(): this {
    return this;
  }

  /** No-op; returns this. */
  unref(): this {
    return this;
  }

  /** Streams have no addresses of their own. */
  get remoteAddress(): string | undefined {
    return undefined;
  }

  /** Streams have no addresses of their own. */
  get remotePort(): number | undefined {
    return undefined;
  }

  /** Streams have no addresses of their own. */
  get localAddress(): string | undefined {
    return undefined;
  }

  /** Streams have no addresses of their own. */
  get localPort(): number | undefined {
    return undefined;
  }
}
