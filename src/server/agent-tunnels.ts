import { createContextValues, type ContextValues } from "@connectrpc/connect";
import type { WebSocket } from "ws";
import { agentIdentityKey, type AgentIdentity } from "../auth/agent-identity.js";
import type { ServerConfig } from "../config.js";
import type { Batcher } from "../db/batcher.js";
import type { ConnectionRefresh } from "../db/queries/agent-connections.js";
import type { Logger } from "../log.js";
import { ConnectionTracker, type EvictionReason } from "../tracker/connection-tracker.js";
import { serveDrpc, type RpcCore } from "../rpc/index.js";
import type { HttpServers } from "../tunnel/http-dispatch.js";
import { dispatchTunnelStream, type TunnelStreamHandlers } from "../tunnel/tunnel-stream-dispatch.js";
import { TUNNEL_MAX_MESSAGE_BYTES, TUNNEL_MAX_STREAM_WINDOW } from "../tunnel/tunnel-limits.js";
import { CLEAN_CLOSE_CODES, CloseCode, closeWebSocket } from "../tunnel/websocket-close.js";
import { webSocketDuplex } from "../tunnel/websocket-duplex.js";
import { GoAwayCode, Session, YamuxErrorCode, type Stream } from "../yamux/index.js";
import type { Admission } from "./agent-admission.js";
import type { AgentServerStore } from "./agent-store.js";
import type { IdentityWatch, RevocationReason } from "./identity-watch.js";
import type { ServerMetrics } from "./metrics.js";
import type { TunnelIdentities } from "./tunnel-identities.js";

/**
 * A plain-port connection must show its first bytes (HTTP/2 preface or request line) within
 * this time. A tunnel's streams have no such timer: the session's stream limit bounds them.
 */
export const SNIFF_TIMEOUT_MS = 10_000;

/** Why a tunnel ended: a fixed set, for the `agentgate_agent_disconnects_total` label and the log line. */
export type DisconnectReason =
  | EvictionReason
  /** Its identity ended: agent or workspace deleted, token revoked, or a newer build. */
  | RevocationReason
  /** The agent closed the WebSocket cleanly. */
  | "agent_closed"
  /** The WebSocket broke or closed with an error code. */
  | "connection_lost"
  /** The agent broke the yamux protocol. */
  | "protocol_error"
  /** The agent sent a text message. */
  | "unsupported_data"
  /** The agent sent a message over the read limit. */
  | "message_too_big"
  /** This server is shutting down. */
  | "server_shutdown";

/** What the tunnels need from the server. */
export interface AgentTunnelsOptions {
  config: ServerConfig;
  store: AgentServerStore;
  logger: Logger;
  metrics: ServerMetrics;
  /** The servers a tunnel's streams are handed to. */
  servers: HttpServers;
  identities: TunnelIdentities;
  /** Holds each tunnel's identity and cuts the tunnel when the database says it ended. */
  watch: IdentityWatch;
  /** Serves the DRPC streams (what stock Coder agents speak). */
  rpcCore: RpcCore;
  /** Where trackers queue their connection-time refreshes. */
  heartbeats: Batcher<ConnectionRefresh>;
  /** Publishes `agt_connection_update` for an agent; must not throw. */
  publishConnectionUpdate: (identity: AgentIdentity) => void;
  isShuttingDown: () => boolean;
}

/** One live agent tunnel. */
interface Tunnel {
  ws: WebSocket;
  session: Session;
  /** Resolves when the tunnel is gone and its disconnect is written. */
  done: Promise<void>;
}

/**
 * The live agent tunnels of this server: each a WebSocket carrying a yamux server session whose
 * streams are HTTP connections, watched by a connection tracker, counted, logged when it starts
 * and when it ends (with why), and drained at shutdown.
 */
export class AgentTunnels {
  private readonly tunnels = new Set<Tunnel>();

  constructor(private readonly options: AgentTunnelsOptions) {}

  /** Tunnels open right now. */
  get count(): number {
    return this.tunnels.size;
  }

  /** Runs the tunnel of an admitted agent on its upgraded WebSocket. */
  run(ws: WebSocket, admission: Admission, remoteAddress: string | undefined): void {
    const { config, metrics, heartbeats, store, watch } = this.options;
    const { identity } = admission;
    // The child carries only ids: every binding costs each idle tunnel its memory. The names go
    // on the two lines operators read, connected and disconnected.
    const logger = this.options.logger.child({ agent_id: identity.agentId, workspace_id: identity.workspaceId });
    const names = () => ({ owner: identity.ownerUsername, workspace: identity.workspaceName, agent: identity.agentName, remote_address: remoteAddress });
    const session = new Session(webSocketDuplex(ws), {
      role: "server",
      maxStreams: config.maxStreamsPerAgent,
      maxWindow: TUNNEL_MAX_STREAM_WINDOW,
      maxMessageBytes: TUNNEL_MAX_MESSAGE_BYTES,
      closeTimeoutMs: config.shutdownGraceMs,
    });
    const handlers = this.streamHandlers(identity, logger);
    session.on("stream", (stream: Stream) => dispatchTunnelStream(stream, handlers));
    session.on("error", (err: Error) => logger.warn({ err }, "yamux session failed"));
    let evicted: EvictionReason | RevocationReason | undefined;
    const evict = (reason: EvictionReason | RevocationReason, closeReason: string) => {
      if (evicted !== undefined) return;
      evicted = reason;
      metrics.evictions.inc({ reason });
      if (reason === "ping_timeout") metrics.pingTimeouts.inc();
      closeWebSocket(ws, CloseCode.GoingAway, closeReason);
      session.destroy();
    };
    const tracker = new ConnectionTracker({
      agentId: identity.agentId,
      socket: ws,
      store: {
        connect: (agentId, at) => store.connect(agentId, at),
        refresh: (agentId, connection, at) => void heartbeats.add({ agentId, connection, at }),
        disconnect: (agentId, connection, at) => {
          // A refresh still waiting would only be skipped by its write; don't send it.
          heartbeats.discard(agentId, (waiting) => waiting.connection === connection);
          return store.disconnect(agentId, connection, at);
        },
      },
      publishConnectionUpdate: () => this.options.publishConnectionUpdate(identity),
      evict,
      updateIntervalMs: config.agentUpdateIntervalMs,
      inactiveTimeoutMs: config.agentInactiveTimeoutMs,
      logger,
      onPing: () => metrics.pings.inc(),
    });
    let resolveDone!: () => void;
    const tunnel: Tunnel = { ws, session, done: new Promise((r) => (resolveDone = r)) };
    this.tunnels.add(tunnel);
    metrics.connectedAgents.inc();
    const connectedAt = Date.now();
    logger.info({ ...names(), api_version: identity.apiVersion, build_number: identity.buildNumber }, "agent connected");
    const release = watch.hold(admission, evict);
    let ended = false;
    const end = (cause: DisconnectReason) => {
      if (ended) return;
      ended = true;
      release();
      const reason = evicted ?? (this.options.isShuttingDown() ? "server_shutdown" : cause);
      session.destroy();
      metrics.connectedAgents.dec();
      metrics.disconnects.inc({ reason });
      // Only what our session saw: an agent's own 1002 close is its claim, not its fault.
      if (session.error?.code === YamuxErrorCode.Protocol) metrics.yamuxProtocolErrors.inc();
      void tracker.stop().finally(() => {
        this.tunnels.delete(tunnel);
        logger.info({ ...names(), reason, connected_ms: Date.now() - connectedAt }, "agent disconnected");
        resolveDone();
      });
    };
    ws.once("close", (code: number) => end(reasonOfClose(code)));
    session.once("close", () => {
      const protocolError = session.error?.code === YamuxErrorCode.Protocol;
      if (this.options.isShuttingDown()) closeWebSocket(ws, CloseCode.GoingAway, "server shutting down");
      else if (protocolError) closeWebSocket(ws, CloseCode.ProtocolError, session.error!.message);
      else closeWebSocket(ws, CloseCode.Normal, "");
      end(protocolError ? "protocol_error" : "connection_lost");
    });
    tracker.start().catch((err: unknown) => logger.error({ err }, "recording agent connection failed"));
  }

  /**
   * Where a tunnel's streams go: HTTP to the servers with the tunnel's identity, DRPC to the RPC
   * core with the same identity in its context values, made once per tunnel on its first DRPC
   * stream (an idle tunnel of a Connect agent never pays for them).
   */
  private streamHandlers(identity: AgentIdentity, logger: Logger): TunnelStreamHandlers {
    const { servers, identities, rpcCore } = this.options;
    let values: ContextValues | undefined;
    return {
      servers,
      http: (server, stream) => identities.handOver(server, stream, identity),
      drpc: (stream) => {
        values ??= createContextValues().set(agentIdentityKey, identity);
        serveDrpc(stream, rpcCore, values, { onProtocolError: (err) => logger.debug({ err }, "DRPC protocol error; stream closed") });
        stream.resume();
      },
    };
  }

  /**
   * Shutdown: every tunnel gets a yamux GoAway and up to the shutdown grace for its open RPCs,
   * then its WebSocket closes with 1001. Resolves when every disconnect is written.
   */
  async closeAll(): Promise<void> {
    await Promise.all(
      [...this.tunnels].map(async (t) => {
        await t.session.close(GoAwayCode.Normal).catch(() => undefined);
        closeWebSocket(t.ws, CloseCode.GoingAway, "server shutting down");
        t.session.destroy();
        await t.done;
      }),
    );
  }
}

/** The disconnect reason a WebSocket close code stands for. */
function reasonOfClose(code: number): DisconnectReason {
  if (CLEAN_CLOSE_CODES.has(code)) return "agent_closed";
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
