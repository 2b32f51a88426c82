import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { Duplex } from "node:stream";
import type { DashboardHandler } from "../dashboard/serve-dashboard.js";
import { isDatabaseUnavailable } from "../db/errors.js";
import { writeError } from "../http/http-error.js";
import { ControlService } from "../../gen/agentgate/control/v1/control_pb.js";
import { AGENT_RPC_PATH } from "../protocol/agent-rpc.js";
import { inReserve } from "./connection-limits.js";
import type { ClientIdentity } from "../tailnet/peer-identity.js";
import type { Admission } from "./agent-admission.js";
import type { AgentServerStore } from "./agent-store.js";
import { CLIENT_COORDINATE_PATH } from "./client-admission.js";
import type { NodeHandler } from "./connect-handler.js";
import type { ServerMetrics } from "./metrics.js";
import { handleTunnelPlainRequest, handleTunnelUpgrade, type TunnelEndpoint } from "./tunnel-endpoint.js";

/** The two tunnel routes: agents', and clients' coordination (absent: its path is not served). */
export interface TunnelRoutes {
  agent: TunnelEndpoint<Admission>;
  /** Admits for the agent id of the path. */
  client?: (agentId: string) => TunnelEndpoint<ClientIdentity>;
}

/** What the routes answer from. */
export interface RoutesOptions {
  store: Pick<AgentServerStore, "ready">;
  metrics: ServerMetrics;
  endpoints: TunnelRoutes;
  /** The dashboard's page and assets; false for a path it doesn't serve. */
  dashboard: DashboardHandler;
  /** Everything else: the Connect services. */
  connect: NodeHandler;
}

/**
 * The request listener of both HTTP servers: /healthz (the process is up), /readyz (the database
 * answers and is migrated), /metrics, the tunnel routes without an upgrade (426 after the checks),
 * the dashboard, and the Connect services for the rest.
 */
export function requestListener(o: RoutesOptions): (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => void {
  return (req, res) => {
    const path = pathOf(req.url);
    const tunnel = req.httpVersionMajor === 1 ? tunnelRoute(o.endpoints, path) : undefined;
    if (inReserve(req) && !reserveMayServe(path)) {
      // HTTP/2 has no Connection header; an HTTP/1.1 connection in the reserve is closed.
      if (req.httpVersionMajor === 1) res.setHeader("connection", "close");
      writeError(res as ServerResponse, 503, { message: "Server is at its connection limit.", detail: "the remaining connections are reserved for agents and the control API" });
    } else if (req.method === "GET" && path === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    } else if (req.method === "GET" && path === "/readyz") {
      o.store.ready().then(
        () => res.writeHead(200, { "content-type": "text/plain" }).end("ok\n"),
        // The database's own error text names its address: unauthenticated callers get a generic one.
        (err: unknown) => writeError(res as ServerResponse, 503, { message: "Not ready.", detail: isDatabaseUnavailable(err) ? "the database can't be reached" : errorText(err) }),
      );
    } else if (req.method === "GET" && path === "/metrics") {
      o.metrics.text().then(
        (text) => res.writeHead(200, { "content-type": o.metrics.registry.contentType }).end(text),
        (err: unknown) => writeError(res as ServerResponse, 500, { message: "Collecting metrics failed.", detail: errorText(err) }),
      );
    } else if (tunnel !== undefined) {
      void tunnel.plain(req as IncomingMessage, res as ServerResponse);
    } else if (!o.dashboard(req, res)) {
      o.connect(req, res);
    }
  };
}

/** The HTTP/1.1 server's upgrade listener: the tunnel routes, and 404 for any other path. */
export function upgradeListener(endpoints: TunnelRoutes): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  return (req, socket, head) => {
    const route = tunnelRoute(endpoints, pathOf(req.url));
    if (route !== undefined) void route.upgrade(req, socket, head);
    else socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
  };
}

const CONTROL_PREFIX = `/${ControlService.typeName}/`;

/** What a connection admitted into the reserve may still reach: agents' dials, the control API, /healthz. */
function reserveMayServe(path: string): boolean {
  return path === AGENT_RPC_PATH || path === "/healthz" || path.startsWith(CONTROL_PREFIX);
}

/** A tunnel route's two handlers, its identity type bound. */
interface TunnelRoute {
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void>;
  plain(req: IncomingMessage, res: ServerResponse): Promise<void>;
}

function routeOf<I>(endpoint: TunnelEndpoint<I>): TunnelRoute {
  return {
    upgrade: (req, socket, head) => handleTunnelUpgrade(req, socket, head, endpoint),
    plain: (req, res) => handleTunnelPlainRequest(req, res, endpoint),
  };
}

/** The tunnel route a path names, if any. */
function tunnelRoute(endpoints: TunnelRoutes, path: string): TunnelRoute | undefined {
  if (path === AGENT_RPC_PATH) return routeOf(endpoints.agent);
  const agentId = endpoints.client === undefined ? undefined : CLIENT_COORDINATE_PATH.exec(path)?.[1];
  return agentId === undefined ? undefined : routeOf(endpoints.client!(agentId));
}

function pathOf(url: string | undefined): string {
  return (url ?? "/").split("?", 1)[0]!;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
