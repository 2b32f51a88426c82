import type { Duplex } from "node:stream";
import { DrpcConnection, type DrpcConnectionOptions } from "./connection.js";
import { CANCELED_BY_CALLER, DrpcError, DrpcErrorCode, SUPERSEDED, TRANSPORT_ENDED } from "./errors.js";
import { encodeMetadata } from "./metadata.js";
import type { Packet } from "./packet-reader.js";
import { checkMessageSize, DrpcStream, type DrpcCall } from "./stream.js";
import { kindName, PacketKind } from "./wire.js";

/** Options of one client RPC. */
export interface DrpcCallOptions {
  /** Sent as InvokeMetadata right before the Invoke. */
  metadata?: ReadonlyMap<string, string>;
  /**
   * Aborting cancels the RPC and destroys the transport (a yamux stream: RST), as a Coder agent's
   * canceled context does; there is no Cancel packet.
   */
  signal?: AbortSignal;
}

/** What the typed client needs: a unary call and a stream RPC; a connection and a session client both are. */
export interface DrpcCaller {
  /** One request, one reply; rejects with a `DrpcError` (`ERR_DRPC_REMOTE` carries the server's code). */
  unary(method: string, request: Uint8Array, options?: DrpcCallOptions): Promise<Uint8Array>;
  /** Starts an RPC of any shape; the Invoke leaves with the first send or receive. */
  open(method: string, options?: DrpcCallOptions): DrpcCall;
}

/** Options of a client connection. */
export interface DrpcClientOptions extends DrpcConnectionOptions {
  /**
   * After a unary reply, send Close unless the server's CloseSend already ended the RPC, as
   * drpc's client (so a Coder agent) does: it races with the server's CloseSend. Default true.
   */
  closeAfterUnary?: boolean;
  /** End the transport (FIN) when the first RPC is over: one RPC per yamux stream, as a Coder agent. Default false. */
  endAfterRpc?: boolean;
}

/**
 * The client side of DRPC on one transport, behaving like storj.io/drpc's client as a Coder
 * agent uses it: a unary call writes Invoke, Message and CloseSend in one write; any other RPC's
 * Invoke waits in the buffer until the first send or receive (a bidi may open long before it
 * speaks). RPCs run one at a time with stream ids 1, 2, 3, ...: starting one cancels the RPC in
 * progress here, and the server cancels its side on the newer Invoke.
 */
export class DrpcClientConnection extends DrpcConnection implements DrpcCaller {
  private readonly closeAfterUnary: boolean;
  private readonly endAfterRpc: boolean;
  private lastStreamId = 0;
  private abortListener: { signal: AbortSignal; listener: () => void } | undefined;

  /** A client on `transport`, which it owns from now on. */
  constructor(transport: Duplex, options: DrpcClientOptions = {}) {
    super(transport, options);
    this.closeAfterUnary = options.closeAfterUnary ?? true;
    this.endAfterRpc = options.endAfterRpc ?? false;
  }

  open(method: string, options: DrpcCallOptions = {}): DrpcCall {
    if (this.over) throw new DrpcError(DrpcErrorCode.TransportClosed, "the transport is closed");
    if (this.endAfterRpc && this.lastStreamId > 0) throw new Error("this connection carries one RPC (endAfterRpc)");
    const { metadata, signal } = options;
    if (signal?.aborted) throw CANCELED_BY_CALLER;
    const previous = this.current;
    if (previous !== undefined && !previous.terminated) previous.cancel(SUPERSEDED);
    const streamId = ++this.lastStreamId;
    let messageId = 1;
    if (metadata !== undefined) this.writer.append(PacketKind.InvokeMetadata, streamId, messageId++, encodeMetadata(metadata));
    this.writer.append(PacketKind.Invoke, streamId, messageId++, Buffer.from(method, "utf8"));
    const stream = new DrpcStream(this, streamId, method, metadata, messageId);
    this.current = stream;
    if (signal !== undefined) {
      const listener = (): void => {
        stream.cancel(CANCELED_BY_CALLER);
        this.over = true;
        this.transport.destroy();
      };
      signal.addEventListener("abort", listener, { once: true });
      this.abortListener = { signal, listener };
    }
    return stream;
  }

  async unary(method: string, request: Uint8Array, options?: DrpcCallOptions): Promise<Uint8Array> {
    checkMessageSize(request);
    const call = this.open(method, options);
    // Both queued in this tick, so Invoke, Message and CloseSend leave in one write.
    void call.send(request);
    call.closeSend();
    const reply = await call.receive();
    if (reply === undefined) throw new DrpcError(DrpcErrorCode.MissingReply, "EOF: the server ended the RPC without a reply");
    if (this.closeAfterUnary) call.close();
    return reply;
  }

  /** Cancels the RPC in progress and ends the transport (FIN). */
  close(): void {
    this.endTransport(TRANSPORT_ENDED);
  }

  /** @internal StreamHost. */
  override streamTerminated(stream: DrpcStream): void {
    if (stream !== this.current) return;
    const abort = this.abortListener;
    this.abortListener = undefined;
    abort?.signal.removeEventListener("abort", abort.listener);
    if (this.endAfterRpc) this.endTransport(TRANSPORT_ENDED);
  }

  protected onNewStreamPacket(packet: Packet): void {
    throw new DrpcError(DrpcErrorCode.Protocol, `server sent ${kindName(packet.kind)} for stream ${packet.streamId}, which was never opened`);
  }
}
