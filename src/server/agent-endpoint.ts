import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { WebSocket, WebSocketServer } from "ws";
import { HttpError, writeError, writeSocketError, type ErrorBody } from "../http/http-error.js";
import type { Logger } from "../log.js";
import { admit, type Admission, type AdmissionOptions } from "./agent-admission.js";
import type { ServerMetrics } from "./metrics.js";

/** What the agent route needs. */
export interface AgentEndpointOptions {
  admission: AdmissionOptions;
  /** A `noServer` WebSocket server with the tunnel's limits. */
  wss: WebSocketServer;
  metrics: ServerMetrics;
  logger: Logger;
  /** True once shutdown began: new agents are turned away with 503. */
  isShuttingDown: () => boolean;
  /** Runs the tunnel on an upgraded socket. */
  onTunnel: (ws: WebSocket, admission: Admission, remoteAddress: string | undefined) => void;
}

/**
 * Checks an agent's dial before anything is upgraded: the server is not shutting down, then the
 * one admission (token, latest build, API version), then the Origin. Returns the identity to run
 * the tunnel with.
 */
async function admitDial(req: IncomingMessage, url: URL, options: AgentEndpointOptions): Promise<Admission> {
  if (options.isShuttingDown()) throw new HttpError(503, { message: "Server is shutting down." });
  const admission = await admit({ headers: req.headers, url, apiVersion: url.searchParams.get("version") }, options.admission);
  checkOrigin(req);
  return admission;
}

/** A browser page of another site must not open an agent tunnel with a cookie. */
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
  let admission: Admission;
  try {
    if (req.method !== "GET") throw new HttpError(405, { message: `Method ${req.method ?? ""} not allowed.` });
    admission = await admitDial(req, url, options);
  } catch (err) {
    const { status, body } = refuse(req, err, options);
    writeSocketError(socket, status, body);
    return;
  }
  if (socket.destroyed) return;
  // Read now: a closure here that kept `req` would keep the whole request for the tunnel's life,
  // as the socket's error listener shares this function's scope.
  const remoteAddress = req.socket.remoteAddress;
  options.wss.handleUpgrade(req, socket, head, (ws) => {
    options.metrics.upgrades.inc({ result: "upgraded", status: "101" });
    options.onTunnel(ws, admission, remoteAddress);
  });
}

/** The agent route without upgrade headers: the same checks, then 426, as coderd answers. */
export async function handleAgentPlainRequest(req: IncomingMessage, res: ServerResponse, options: AgentEndpointOptions): Promise<void> {
  try {
    await admitDial(req, requestUrl(req), options);
    throw new HttpError(426, { message: "This endpoint requires a WebSocket upgrade.", detail: "send Connection: Upgrade and Upgrade: websocket" });
  } catch (err) {
    const { status, body } = refuse(req, err, options);
    if (status === 426) res.setHeader("upgrade", "websocket");
    writeError(res, status, body);
  }
}

function requestUrl(req: IncomingMessage): URL {
  return new URL(req.url ?? "/", "http://agentgate.invalid");
}

/** The answer to a refused dial, counted and logged: at info for the agent's fault, at error for ours. */
function refuse(req: IncomingMessage, err: unknown, options: AgentEndpointOptions): { status: number; body: ErrorBody } {
  const refusal =
    err instanceof HttpError
      ? { status: err.status, body: err.body }
      : { status: 500, body: { message: "Internal error." } };
  const failed = refusal.status >= 500 && refusal.status !== 503;
  options.metrics.upgrades.inc({ result: failed ? "failed" : "refused", status: String(refusal.status) });
  const fields = { status: refusal.status, message: refusal.body.message, detail: refusal.body.detail, remote_address: req.socket.remoteAddress };
  // The database's own error goes to the log only (its text names the database's address).
  const cause = err instanceof HttpError ? err.cause : err;
  if (failed) options.logger.error({ ...fields, err: cause ?? err }, "agent dial failed");
  else if (cause !== undefined) options.logger.warn({ ...fields, err: cause }, "agent dial refused: database unavailable");
  else options.logger.info(fields, "agent dial refused");
  return refusal;
}
