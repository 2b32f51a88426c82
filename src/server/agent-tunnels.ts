import type { WebSocket } from "ws";
import { agentIdentityKey, type AgentIdentity } from "../auth/agent-identity.js";
import type { ServerConfig } from "../config.js";
import type { Batcher } from "../db/batcher.js";
import type { ConnectionRefresh } from "../db/queries/agent-connections.js";
import type { Logger } from "../log.js";
import { ConnectionTracker, type EvictionReason } from "../tracker/connection-tracker.js";
import type { RpcCore } from "../rpc/index.js";
import type { HttpServers } from "../tunnel/http-dispatch.js";
import { CloseCode, closeWebSocket } from "../tunnel/websocket-close.js";
import type { Admission } from "./agent-admission.js";
import type { AgentServerStore } from "./agent-store.js";
import type { IdentityWatch, RevocationReason } from "./identity-watch.js";
import type { ServerMetrics } from "./metrics.js";
import type { TunnelIdentities } from "./tunnel-identities.js";
import { closeTunnels, startTunnelSession, tunnelStreamHandlers, type LiveTunnel, type TunnelEnd } from "./tunnel-session.js";
import type { TunnelHttp2 } from "./tunnel-http2.js";
import type { TunnelStreamHandlers } from "../tunnel/tunnel-stream-dispatch.js";

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
  identities: TunnelIdentities<AgentIdentity>;
  /** Holds each tunnel's identity and cuts the tunnel when the database says it ended. */
  watch: IdentityWatch;
  /** Serves the DRPC streams (what stock Coder agents speak). */
  rpcCore: RpcCore;
  /** Where trackers queue their connection-time refreshes. */
  heartbeats: Batcher<ConnectionRefresh>;
  /** Publishes `agt_connection_update` for an agent; must not throw. */
  publishConnectionUpdate: (identity: AgentIdentity) => void;
  isShuttingDown: () => boolean;
  /** With `--tunnel-http2 agentgate`: serves the tunnels' HTTP/2 streams instead of node:http2. */
  tunnelHttp2?: TunnelHttp2;
}

/**
 * The live agent tunnels of this server: each a WebSocket carrying a yamux server session whose
 * streams are HTTP connections, watched by a connection tracker, counted, logged when it starts
 * and when it ends (with why), and drained at shutdown.
 */
export class AgentTunnels {
  private readonly tunnels = new Set<LiveTunnel>();

  constructor(private readonly options: AgentTunnelsOptions) {}

  /** Tunnels open right now. */
  get count(): number {
    return this.tunnels.size;
  }

  /** Runs the tunnel of an admitted agent on its upgraded WebSocket. */
  run(ws: WebSocket, admission: Admission, remoteAddress: string | undefined): void {
    const { config, metrics, heartbeats, store, servers, identities, rpcCore, watch } = this.options;
    const { identity } = admission;
    // The child carries only ids: every binding costs each idle tunnel its memory. The names go
    // on the two lines operators read, connected and disconnected.
    const logger = this.options.logger.child({ agent_id: identity.agentId, workspace_id: identity.workspaceId });
    const names = () => ({ owner: identity.ownerUsername, workspace: identity.workspaceName, agent: identity.agentName, remote_address: remoteAddress });
    let evicted: EvictionReason | RevocationReason | undefined;
    let release: (() => void) | undefined;
    let resolveDone!: () => void;
    const done = new Promise<void>((r) => (resolveDone = r));
    const connectedAt = Date.now();
    const session = startTunnelSession(ws, {
      config,
      handlers: this.streamHandlers(identity, logger),
      logger,
      isShuttingDown: this.options.isShuttingDown,
      onEnd: (how, protocolError) => {
        release?.();
        const reason = evicted ?? (this.options.isShuttingDown() ? "server_shutdown" : disconnectReasonOf(how));
        metrics.connectedAgents.dec();
        metrics.disconnects.inc({ reason });
        if (protocolError) metrics.yamuxProtocolErrors.inc();
        void tracker.stop().finally(() => {
          this.tunnels.delete(tunnel);
          logger.info({ ...names(), reason, connected_ms: Date.now() - connectedAt }, "agent disconnected");
          resolveDone();
        });
      },
    });
    const tunnel: LiveTunnel = { ws, session, done };
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
        refresh: (agentId, connection, at, onSuperseded) => void heartbeats.add({ agentId, connection, at, onSuperseded }),
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
      // yamux bytes only: the agent's pongs (WebSocket control frames) don't reach the session.
      bytesReceived: () => session.bytesReceived,
      logger,
      onPing: () => metrics.pings.inc(),
    });
    this.tunnels.add(tunnel);
    metrics.connectedAgents.inc();
    logger.info({ ...names(), api_version: identity.apiVersion, build_number: identity.buildNumber }, "agent connected");
    release = watch.hold(admission, evict);
    tracker.start().catch((err: unknown) => logger.error({ err }, "recording agent connection failed"));
  }

  /** How one tunnel's streams are served: DRPC, HTTP/1.1 and HTTP/2 (node's, or agentgate's own). */
  private streamHandlers(identity: AgentIdentity, logger: Logger): TunnelStreamHandlers {
    const { servers, identities, rpcCore, tunnelHttp2 } = this.options;
    const handlers = tunnelStreamHandlers({ servers, identities, rpcCore }, identity, agentIdentityKey, logger);
    if (tunnelHttp2 === undefined) return handlers;
    const viaNode = handlers.http;
    return { ...handlers, http: (server, stream) => (server === servers.http2 ? tunnelHttp2.serve(stream, identity) : viaNode(server, stream)) };
  }

  /**
   * Shutdown: every tunnel gets a yamux GoAway and up to the shutdown grace for its open RPCs,
   * then its WebSocket closes with 1001. Resolves when every disconnect is written.
   */
  closeAll(): Promise<void> {
    return closeTunnels(this.tunnels);
  }
}

/** The disconnect reason of a tunnel's end: a clean close is the agent's. */
function disconnectReasonOf(how: TunnelEnd): DisconnectReason {
  return how === "closed" ? "agent_closed" : how;
}
