import { createContextValues, type ContextKey, type ContextValues } from "@connectrpc/connect";
import type { WebSocket } from "ws";
import type { ServerConfig } from "../config.js";
import type { Logger } from "../log.js";
import { serveDrpc, type RpcCore } from "../rpc/index.js";
import type { HttpServers } from "../tunnel/http-dispatch.js";
import { dispatchTunnelStream, type TunnelStreamHandlers } from "../tunnel/tunnel-stream-dispatch.js";
import { TUNNEL_MAX_MESSAGE_BYTES, TUNNEL_MAX_STREAM_WINDOW } from "../tunnel/tunnel-limits.js";
import { CLEAN_CLOSE_CODES, CloseCode, closeWebSocket } from "../tunnel/websocket-close.js";
import { webSocketDuplex } from "../tunnel/websocket-duplex.js";
import { GoAwayCode, Session, YamuxErrorCode, type Stream } from "../yamux/index.js";
import type { TunnelIdentities } from "./tunnel-identities.js";

/** How a tunnel's transport ended, before what the route makes of it (an eviction, the shutdown). */
export type TunnelEnd =
  /** The peer closed the WebSocket cleanly. */
  | "closed"
  /** The WebSocket broke or closed with an error code. */
  | "connection_lost"
  /** The peer broke the yamux protocol. */
  | "protocol_error"
  /** The peer sent a text message. */
  | "unsupported_data"
  /** The peer sent a message over the read limit. */
  | "message_too_big";

/** What a tunnel's session is built with. */
export interface TunnelSessionOptions {
  config: ServerConfig;
  /** Where each stream goes once its protocol is known, with the tunnel's identity. */
  handlers: TunnelStreamHandlers;
  logger: Logger;
  isShuttingDown: () => boolean;
  /** Called once, when the WebSocket or the session ends: with how, and whether our session saw a yamux protocol error. */
  onEnd: (how: TunnelEnd, protocolError: boolean) => void;
}

/** One live tunnel. */
export interface LiveTunnel {
  ws: WebSocket;
  session: Session;
  /** Resolves when the tunnel is gone and whatever its route writes at the end is written. */
  done: Promise<void>;
}

/**
 * Runs a yamux server session over an upgraded WebSocket whose streams are DRPC, HTTP/2 or
 * HTTP/1.1 connections, each dispatched by its first bytes; agent and client tunnels alike. The WebSocket's close and the session's end each end the other.
 */
export function startTunnelSession(ws: WebSocket, options: TunnelSessionOptions): Session {
  const { config, handlers, logger } = options;
  const session = new Session(webSocketDuplex(ws), {
    role: "server",
    maxStreams: config.maxStreamsPerAgent,
    maxWindow: TUNNEL_MAX_STREAM_WINDOW,
    maxMessageBytes: TUNNEL_MAX_MESSAGE_BYTES,
    closeTimeoutMs: config.shutdownGraceMs,
  });
  session.on("stream", (stream: Stream) => dispatchTunnelStream(stream, handlers));
  session.on("error", (err: Error) => logger.warn({ err }, "yamux session failed"));
  let ended = false;
  const end = (how: TunnelEnd) => {
    if (ended) return;
    ended = true;
    session.destroy();
    // Only what our session saw: a peer's own 1002 close is its claim, not its fault.
    options.onEnd(how, session.error?.code === YamuxErrorCode.Protocol);
  };
  ws.once("close", (code: number) => end(endOfClose(code)));
  session.once("close", () => {
    const protocolError = session.error?.code === YamuxErrorCode.Protocol;
    if (options.isShuttingDown()) closeWebSocket(ws, CloseCode.GoingAway, "server shutting down");
    else if (protocolError) closeWebSocket(ws, CloseCode.ProtocolError, session.error!.message);
    else closeWebSocket(ws, CloseCode.Normal, "");
    end(protocolError ? "protocol_error" : "connection_lost");
  });
  return session;
}

/** What a tunnel's streams are served by. */
export interface TunnelServers<I extends object> {
  servers: HttpServers;
  identities: TunnelIdentities<I>;
  /** Serves the DRPC streams (what stock Coder agents and clients speak). */
  rpcCore: RpcCore;
}

/**
 * Where a tunnel's streams go: HTTP to the servers with the tunnel's identity, DRPC to the RPC
 * core with the same identity under `key` in its context values, made once per tunnel on its
 * first DRPC stream (an idle tunnel of a Connect peer never pays for them).
 */
export function tunnelStreamHandlers<I extends object>(parts: TunnelServers<I>, identity: I, key: ContextKey<I | undefined>, logger: Logger): TunnelStreamHandlers {
  const { servers, identities, rpcCore } = parts;
  let values: ContextValues | undefined;
  return {
    servers,
    http: (server, stream) => identities.handOver(server, stream, identity),
    drpc: (stream) => {
      values ??= createContextValues().set(key, identity);
      serveDrpc(stream, rpcCore, values, { onProtocolError: (err) => logger.debug({ err }, "DRPC protocol error; stream closed") });
      stream.resume();
    },
  };
}

/**
 * Shutdown of a set of tunnels: each gets a yamux GoAway and up to the shutdown grace for its
 * open RPCs, then its WebSocket closes with 1001. Resolves when every tunnel is done.
 */
export async function closeTunnels(tunnels: Iterable<LiveTunnel>): Promise<void> {
  await Promise.all(
    [...tunnels].map(async (t) => {
      await t.session.close(GoAwayCode.Normal).catch(() => undefined);
      closeWebSocket(t.ws, CloseCode.GoingAway, "server shutting down");
      t.session.destroy();
      await t.done;
    }),
  );
}

/** How a WebSocket close code ended the tunnel. */
function endOfClose(code: number): TunnelEnd {
  if (CLEAN_CLOSE_CODES.has(code)) return "closed";
  switch (code) {
    case CloseCode.ProtocolError:
      return "protocol_error";
    case CloseCode.UnsupportedData:
      return "unsupported_data";
    case CloseCode.MessageTooBig:
      return "message_too_big";
    default:
      return "connection_lost";
  }
}
