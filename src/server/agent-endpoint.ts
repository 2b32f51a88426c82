import type { WebSocket, WebSocketServer } from "ws";
import { HttpError } from "../http/http-error.js";
import type { Logger } from "../log.js";
import { admit, type Admission, type AdmissionOptions } from "./agent-admission.js";
import { OVERLOAD_RETRY_AFTER_SECONDS, type DialOverload } from "./dial-overload.js";
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
 * The agent route: unless the process is saturated (503 with Retry-After), the one admission
 * (token, latest build, API version) gives the agent's identity.
 */
export function agentEndpoint(options: AgentEndpointOptions): TunnelEndpoint<Admission> {
  return {
    who: "agent",
    admit: (req, url) => {
      const overloaded = options.overload.refusal();
      if (overloaded !== undefined) {
        options.metrics.overloadRefusals.inc({ reason: overloaded });
        const detail = overloaded === "pending_dials" ? "too many agents are dialing at once" : "the server is saturated";
        const headers = { "retry-after": String(OVERLOAD_RETRY_AFTER_SECONDS) };
        return Promise.reject(new HttpError(503, { message: "Server is overloaded; retry later.", detail }, { headers }));
      }
      return options.overload.track(() => admit({ headers: req.headers, url, apiVersion: url.searchParams.get("version") }, options.admission));
    },
    wss: options.wss,
    upgrades: options.metrics.upgrades,
    logger: options.logger,
    isShuttingDown: options.isShuttingDown,
    onTunnel: options.onTunnel,
  };
}
