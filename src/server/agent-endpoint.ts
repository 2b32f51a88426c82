import type { WebSocket, WebSocketServer } from "ws";
import type { Logger } from "../log.js";
import { admit, type Admission, type AdmissionOptions } from "./agent-admission.js";
import type { DialOverload } from "./dial-overload.js";
import type { ServerMetrics } from "./metrics.js";
import type { TunnelEndpoint } from "./tunnel-endpoint.js";

/** What the agent route needs. */
export interface AgentEndpointOptions {
  admission: AdmissionOptions;
  /** A `noServer` WebSocket server with the tunnel's limits. */
  wss: WebSocketServer;
  metrics: ServerMetrics;
  logger: Logger;
  /** True once shutdown began: new agents are turned away with 503. */
  isShuttingDown: () => boolean;
  /** Turns new dials away with 503 and Retry-After while the process is saturated. */
  overload: DialOverload;
  /** Runs the tunnel on an upgraded socket. */
  onTunnel: (ws: WebSocket, admission: Admission, remoteAddress: string | undefined) => void;
}

/**
 * The agent route: when its turn comes (or 503 with Retry-After, see {@link DialOverload}), the
 * one admission (token, latest build, API version) gives the agent's identity.
 */
export function agentEndpoint(options: AgentEndpointOptions): TunnelEndpoint<Admission> {
  return {
    who: "agent",
    admit: (req, url) =>
      options.overload.admit(
        () => admit({ headers: req.headers, url, apiVersion: url.searchParams.get("version") }, options.admission),
        () => req.socket.destroyed,
      ),
    wss: options.wss,
    upgrades: options.metrics.upgrades,
    logger: options.logger,
    isShuttingDown: options.isShuttingDown,
    onTunnel: options.onTunnel,
  };
}
