import type { WebSocket } from "ws";
import type { ServerConfig } from "../config.js";
import type { Logger } from "../log.js";
import type { RpcCore } from "../rpc/index.js";
import { clientIdentityKey, type ClientIdentity } from "../tailnet/peer-identity.js";
import type { HttpServers } from "../tunnel/http-dispatch.js";
import { CloseCode, closeWebSocket } from "../tunnel/websocket-close.js";
import { keepAlive } from "../tunnel/websocket-keepalive.js";
import type { ServerMetrics } from "./metrics.js";
import type { TunnelIdentities } from "./tunnel-identities.js";
import { closeTunnels, startTunnelSession, tunnelStreamHandlers, type LiveTunnel } from "./tunnel-session.js";

/** What client tunnels need from the server. */
export interface ClientTunnelsOptions {
  config: ServerConfig;
  logger: Logger;
  metrics: ServerMetrics;
  servers: HttpServers;
  identities: TunnelIdentities<ClientIdentity>;
  /** Serves the DRPC streams; it holds the Tailnet service alone. */
  rpcCore: RpcCore;
  isShuttingDown: () => boolean;
}

/**
 * The live client tunnels of this server: the same WebSocket and yamux session as an agent's,
 * the same stream dispatch (DRPC, HTTP/2, HTTP/1.1), whose requests carry the client's identity
 * and reach only the Tailnet service. Nothing is
 * recorded in the database for them; pings (the agent update interval and inactive timeout)
 * close one whose network vanished.
 */
export class ClientTunnels {
  private readonly tunnels = new Set<LiveTunnel>();

  constructor(private readonly options: ClientTunnelsOptions) {}

  get count(): number {
    return this.tunnels.size;
  }

  /** Runs the tunnel of an admitted client on its upgraded WebSocket. */
  run(ws: WebSocket, identity: ClientIdentity, remoteAddress: string | undefined): void {
    const { config, metrics, servers, identities, rpcCore } = this.options;
    const logger = this.options.logger.child({ peer_id: identity.peerId, agent_id: identity.agentId });
    let resolveDone!: () => void;
    const done = new Promise<void>((r) => (resolveDone = r));
    const connectedAt = Date.now();
    let timedOut = false;
    const session = startTunnelSession(ws, {
      config,
      handlers: tunnelStreamHandlers({ servers, identities, rpcCore }, identity, clientIdentityKey, logger),
      logger,
      isShuttingDown: this.options.isShuttingDown,
      onEnd: (how, protocolError) => {
        const reason = timedOut ? "ping_timeout" : this.options.isShuttingDown() ? "server_shutdown" : how === "closed" ? "client_closed" : how;
        this.tunnels.delete(tunnel);
        metrics.connectedClients.dec();
        if (protocolError) metrics.yamuxProtocolErrors.inc();
        logger.info({ reason, connected_ms: Date.now() - connectedAt, remote_address: remoteAddress }, "client disconnected");
        resolveDone();
      },
    });
    const tunnel: LiveTunnel = { ws, session, done };
    this.tunnels.add(tunnel);
    metrics.connectedClients.inc();
    keepAlive(ws, config.agentUpdateIntervalMs, config.agentInactiveTimeoutMs, () => {
      timedOut = true;
      closeWebSocket(ws, CloseCode.GoingAway, "ping timeout");
      session.destroy();
    });
    logger.info({ remote_address: remoteAddress }, "client connected");
  }

  /** Shutdown, as for agent tunnels: GoAway, the grace for open RPCs, then 1001. */
  closeAll(): Promise<void> {
    return closeTunnels(this.tunnels);
  }
}
