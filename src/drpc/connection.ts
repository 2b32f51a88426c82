import type { Duplex } from "node:stream";
import { DrpcError, DrpcErrorCode, TRANSPORT_CLOSED, TRANSPORT_ENDED } from "./errors.js";
import { PacketReader, type Packet } from "./packet-reader.js";
import { PacketWriter } from "./packet-writer.js";
import type { DrpcStream, StreamHost } from "./stream.js";
import { isKnownKind, kindName, MAX_PACKET_BYTES } from "./wire.js";

/** Options both connection sides take. */
export interface DrpcConnectionOptions {
  /**
   * Messages an RPC may queue for a reader that is not reading before the transport is paused
   * (its sender then waits on the yamux window). Default 32: a burst of small updates fits.
   */
  maxQueuedMessages?: number;
  /** Bytes an RPC may queue before the transport is paused. Default 4 MiB: one largest message. */
  maxQueuedBytes?: number;
  /** Told once when the peer broke the protocol; the transport is then destroyed. For logs. */
  onProtocolError?: (error: DrpcError) => void;
}

const DEFAULT_MAX_QUEUED_MESSAGES = 32;

/**
 * What the DRPC server and client connections share (drpc's manager): one transport (a yamux
 * stream, any Duplex), packets read from it and dispatched to the one current RPC, packets
 * written to it, and the rules of storj.io/drpc that do not depend on the side:
 * - unknown kinds are ignored with the control flag and close the transport without it;
 * - a packet for an older stream id than the current RPC's is dropped silently;
 * - a protocol error cancels the current RPC and destroys the transport;
 * - the peer's FIN cancels the current RPC and ends this side too; a reset or a failure cancels it.
 * @internal
 */
export abstract class DrpcConnection implements StreamHost {
  readonly writer: PacketWriter;
  readonly maxQueuedMessages: number;
  readonly maxQueuedBytes: number;
  protected readonly transport: Duplex;
  /** The RPC packets go to: the newest one started, until a newer one starts. */
  protected current: DrpcStream | undefined;
  /** The transport is gone or going: no new RPCs. */
  protected over = false;
  private readonly reader: PacketReader;
  private readonly onProtocolError: ((error: DrpcError) => void) | undefined;
  private inputPaused = false;
  private drained: Promise<void> | undefined;

  protected constructor(transport: Duplex, options: DrpcConnectionOptions) {
    this.transport = transport;
    this.writer = new PacketWriter(transport);
    this.maxQueuedMessages = options.maxQueuedMessages ?? DEFAULT_MAX_QUEUED_MESSAGES;
    this.maxQueuedBytes = options.maxQueuedBytes ?? MAX_PACKET_BYTES;
    this.onProtocolError = options.onProtocolError;
    this.reader = new PacketReader((packet) => this.dispatch(packet));
    transport.on("data", this.onData);
    transport.once("end", this.onEnd);
    transport.once("close", this.onClose);
    transport.on("error", this.onTransportError);
  }

  /** A packet for a stream id above the current RPC's (or the first one): the side decides. */
  protected abstract onNewStreamPacket(packet: Packet): void;

  /** @internal StreamHost: the current RPC is over. */
  streamTerminated(_stream: DrpcStream): void {}

  /** @internal StreamHost. */
  writable(): Promise<void> | undefined {
    const transport = this.transport;
    if (!transport.writableNeedDrain) return undefined;
    this.drained ??= new Promise((resolve) => {
      const done = (): void => {
        transport.off("drain", done);
        transport.off("close", done);
        this.drained = undefined;
        resolve();
      };
      transport.on("drain", done);
      transport.on("close", done);
    });
    return this.drained;
  }

  /** @internal StreamHost. */
  inputDrained(): void {
    if (!this.inputPaused || this.current?.queueFull === true) return;
    this.inputPaused = false;
    this.transport.resume();
  }

  /**
   * Cancels the current RPC and ends the transport (FIN) after what is queued (a last Close);
   * the peer's FIN then closes it.
   */
  protected endTransport(reason: DrpcError): void {
    this.over = true;
    this.current?.cancel(reason);
    this.writer.flush();
    const transport = this.transport;
    if (!transport.destroyed && !transport.writableEnded) transport.end();
  }

  private readonly onData = (chunk: Buffer | string): void => {
    try {
      this.reader.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
    } catch (err) {
      this.fail(err);
    }
  };

  private dispatch(packet: Packet): void {
    if (!isKnownKind(packet.kind)) {
      if (packet.control) return; // reserved for future use by peers that understand it
      throw new DrpcError(DrpcErrorCode.Protocol, `unknown packet ${kindName(packet.kind)}`);
    }
    const current = this.current;
    if (current !== undefined) {
      if (packet.streamId === current.id) {
        current.handlePacket(packet);
        if (current.queueFull && !this.inputPaused) {
          this.inputPaused = true;
          this.transport.pause();
        }
        return;
      }
      if (packet.streamId < current.id) return; // a late packet of an RPC that is over
    }
    this.onNewStreamPacket(packet);
  }

  private fail(err: unknown): void {
    const error = err instanceof DrpcError ? err : new DrpcError(DrpcErrorCode.Protocol, err instanceof Error ? err.message : String(err));
    this.reader.stop();
    if (this.transport.destroyed) return;
    this.over = true;
    this.onProtocolError?.(error);
    this.current?.cancel(error);
    this.transport.destroy();
  }

  private readonly onEnd = (): void => {
    this.endTransport(TRANSPORT_ENDED);
  };

  private readonly onClose = (): void => {
    this.over = true;
    this.reader.stop();
    this.current?.cancel(TRANSPORT_CLOSED);
  };

  // 'close' follows; the error itself (a yamux reset) says nothing the cancellation doesn't.
  private readonly onTransportError = (): void => {};
}
