import type { Duplex } from "node:stream";
import { DrpcConnection, type DrpcConnectionOptions } from "./connection.js";
import { DrpcError, DrpcErrorCode, SUPERSEDED } from "./errors.js";
import { decodeMetadata } from "./metadata.js";
import type { Packet } from "./packet-reader.js";
import { DrpcStream, type DrpcCall } from "./stream.js";
import { kindName, PacketKind } from "./wire.js";

/**
 * Serves one RPC. It may end the RPC with `closeSend`, `close` or `error`; when it returns
 * without, CloseSend is sent, and when it throws, an Error with code 0 (drpc's "no code").
 * Sends after the RPC is over (canceled by the client, the transport gone) throw.
 */
export type DrpcHandler = (call: DrpcCall) => Promise<void>;

/**
 * The server side of DRPC on one transport (a yamux stream): RPCs one at a time, as drpc's
 * server runs them, each handed to `handler`.
 *
 * - InvokeMetadata applies to the next Invoke of the same stream id.
 * - An Invoke (or InvokeMetadata) for a newer stream cancels the current RPC; the new handler
 *   starts once the current one has returned. Sequential RPCs (stream ids 1, 2, 3, ...) work.
 * - The client's FIN or reset cancels the active handler at once (its signal aborts) and this
 *   side ends too. An empty transport just waits: a bidi's Invoke can come late, so there is no
 *   timer here; what bounds idle streams is the session's stream limit.
 * - When a handler does not read, at most `maxQueuedMessages`/`maxQueuedBytes` wait for it
 *   before the transport is paused; after it returned, the RPC's messages are dropped.
 */
export class DrpcServerConnection extends DrpcConnection {
  private readonly handler: DrpcHandler;
  private pendingMetadata: { streamId: number; metadata: Map<string, string> } | undefined;
  private handlerActive = false;
  /** The newest RPC waiting for the active handler to return. */
  private queued: DrpcStream | undefined;

  /** Serves DRPC on `transport`, which it owns from now on. */
  constructor(transport: Duplex, handler: DrpcHandler, options: DrpcConnectionOptions = {}) {
    super(transport, options);
    this.handler = handler;
  }

  protected onNewStreamPacket(packet: Packet): void {
    if (packet.kind === PacketKind.InvokeMetadata) {
      this.cancelCurrent();
      this.pendingMetadata = { streamId: packet.streamId, metadata: decodeMetadata(packet.data) };
      return;
    }
    if (packet.kind !== PacketKind.Invoke) {
      throw new DrpcError(DrpcErrorCode.Protocol, `${kindName(packet.kind)} for stream ${packet.streamId} before its Invoke`);
    }
    this.cancelCurrent();
    const pending = this.pendingMetadata;
    this.pendingMetadata = undefined;
    const metadata = pending?.streamId === packet.streamId ? pending.metadata : undefined;
    const stream = new DrpcStream(this, packet.streamId, packet.data.toString("utf8"), metadata, 1);
    this.current = stream;
    if (this.handlerActive) this.queued = stream;
    else void this.run(stream);
  }

  private cancelCurrent(): void {
    const current = this.current;
    if (current !== undefined && !current.terminated) current.cancel(SUPERSEDED);
  }

  private async run(stream: DrpcStream): Promise<void> {
    this.handlerActive = true;
    try {
      await this.handler(stream);
    } catch (err) {
      stream.error(0, err instanceof Error ? err.message : String(err));
    }
    stream.closeSend();
    stream.stopReceiving();
    this.handlerActive = false;
    const next = this.queued;
    this.queued = undefined;
    // One superseded or canceled while it waited never runs: its client is gone or moved on.
    if (next !== undefined && !next.terminated) void this.run(next);
  }
}
