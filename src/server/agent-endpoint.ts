import type { IncomingMessage, ServerResponse } from "node:http";
import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import type { WebSocket, WebSocketServer } from "ws";
import { identityOf, type AgentIdentity } from "../auth/agent-identity.js";
import { negotiateApiVersion } from "../auth/api-version.js";
import { authenticateAgent, type LookupAgentByToken } from "../auth/authenticate.js";
import { HttpError, writeError, type ErrorBody } from "../auth/http-error.js";
import { extractToken } from "../auth/token.js";
import type { Logger } from "../log.js";
import type { ServerMetrics } from "./metrics.js";

/** The route agents dial (agent-api.md §1.1). */
export const AGENT_RPC_PATH = "/api/v2/workspaceagents/me/rpc";

export interface AgentEndpointOptions {
  lookup: LookupAgentByToken;
  /** A `noServer` WebSocket server with the tunnel's limits. */
  wss: WebSocketServer;
  replicaId: string;
  metrics: ServerMetrics;
  logger: Logger;
  /** True once shutdown began: new agents are turned away with 503. */
  isShuttingDown: () => boolean;
  /** Runs the tunnel on an upgraded socket. */
  onTunnel: (ws: WebSocket, identity: AgentIdentity) => void;
}

/**
 * Checks an agent's dial before anything is upgraded (contract C2–C6): token, agent, latest
 * build, API version, Origin. Returns the identity to run the tunnel with.
 */
async function admit(req: IncomingMessage, url: URL, options: AgentEndpointOptions): Promise<AgentIdentity> {
  if (options.isShuttingDown()) throw new HttpError(503, { message: "Server is shutting down." });
  const row = await authenticateAgent(extractToken(req.headers, url), options.lookup);
  const apiVersion = negotiateApiVersion(url.searchParams.get("version"));
  checkOrigin(req);
  return identityOf(row, apiVersion, options.replicaId);
}

/** A browser page of another site must not open an agent tunnel with a cookie (C6). */
function checkOrigin(req: IncomingMessage): void {
  const origin = req.headers.origin;
  if (origin === undefined) return;
  let originHost: string;
  try {
    originHost = new URL(origin).host;
  } catch {
    originHost = "";
  }
  if (originHost.toLowerCase() !== (req.headers.host ?? "").toLowerCase()) {
    throw new HttpError(403, { message: "Origin not allowed.", detail: `request Origin "${origin}" does not match Host "${req.headers.host ?? ""}"` });
  }
}

/** Handles an HTTP/1.1 upgrade request on the agent route: admit, then hand the socket to ws. */
export async function handleAgentUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, options: AgentEndpointOptions): Promise<void> {
  socket.on("error", () => socket.destroy());
  const url = requestUrl(req);
  let identity: AgentIdentity;
  try {
    if (req.method !== "GET") throw new HttpError(405, { message: `Method ${req.method ?? ""} not allowed.` });
    identity = await admit(req, url, options);
  } catch (err) {
    const { status, body } = toHttpError(err, options.logger);
    options.metrics.upgrades.inc({ result: String(status) });
    writeSocketError(socket, status, body);
    return;
  }
  if (socket.destroyed) return;
  options.wss.handleUpgrade(req, socket, head, (ws) => {
    options.metrics.upgrades.inc({ result: "ok" });
    options.onTunnel(ws, identity);
  });
}

/** The agent route without upgrade headers: the same checks, then 426 (agent-api.md §1.5). */
export async function handleAgentPlainRequest(req: IncomingMessage, res: ServerResponse, options: AgentEndpointOptions): Promise<void> {
  try {
    await admit(req, requestUrl(req), options);
    options.metrics.upgrades.inc({ result: "426" });
    res.setHeader("upgrade", "websocket");
    writeError(res, 426, { message: "This endpoint requires a WebSocket upgrade.", detail: "send Connection: Upgrade and Upgrade: websocket" });
  } catch (err) {
    const { status, body } = toHttpError(err, options.logger);
    options.metrics.upgrades.inc({ result: String(status) });
    writeError(res, status, body);
  }
}

function requestUrl(req: IncomingMessage): URL {
  return new URL(req.url ?? "/", "http://agentgate.invalid");
}

function toHttpError(err: unknown, logger: Logger): { status: number; body: ErrorBody } {
  if (err instanceof HttpError) return { status: err.status, body: err.body };
  logger.error({ err }, "agent endpoint failed");
  return { status: 500, body: { message: "Internal error.", detail: err instanceof Error ? err.message : String(err) } };
}

/** Answers on a socket that was never upgraded, then closes it. */
function writeSocketError(socket: Duplex, status: number, body: ErrorBody): void {
  if (socket.destroyed) return;
  const json = JSON.stringify(body);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\n` +
      "Content-Type: application/json\r\n" +
      `Content-Length: ${Buffer.byteLength(json)}\r\n` +
      "Connection: close\r\n\r\n" +
      json,
  );
}
