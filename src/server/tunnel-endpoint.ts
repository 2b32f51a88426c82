import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { Counter } from "prom-client";
import type { WebSocket, WebSocketServer } from "ws";
import { HttpError, writeError, writeSocketError, type ErrorBody } from "../http/http-error.js";
import type { Logger } from "../log.js";

/**
 * A route that upgrades to a tunnel (a WebSocket carrying a yamux session): the agent route and
 * the client coordination route. Each admits a dial its own way into an identity `I`; the
 * checks around it, the upgrade and the refusals are the same for both.
 */
export interface TunnelEndpoint<I> {
  /** Who dials this route, for log lines: "agent" or "client". */
  who: "agent" | "client";
  /**
   * Admits a dial from its headers and URL (token, API version, whatever the route names),
   * before anything is upgraded; throws {@link HttpError} to refuse.
   */
  admit: (req: IncomingMessage, url: URL) => Promise<I>;
  /** A `noServer` WebSocket server with the tunnel's limits. */
  wss: WebSocketServer;
  /** Counts requests on the route by result (upgraded, refused, failed) and status. */
  upgrades: Counter<"result" | "status">;
  logger: Logger;
  /** True once shutdown began: new tunnels are turned away with 503. */
  isShuttingDown: () => boolean;
  /** Runs the tunnel on an upgraded socket. */
  onTunnel: (ws: WebSocket, identity: I, remoteAddress: string | undefined) => void;
}

/** The checks of every dial: the server is not shutting down, the route's admission, then the Origin. */
async function admitDial<I>(req: IncomingMessage, url: URL, endpoint: TunnelEndpoint<I>): Promise<I> {
  if (endpoint.isShuttingDown()) throw new HttpError(503, { message: "Server is shutting down." });
  const identity = await endpoint.admit(req, url);
  checkOrigin(req);
  return identity;
}

/** A browser page of another site must not open a tunnel with a cookie. */
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

/** Handles an HTTP/1.1 upgrade request on a tunnel route: admit, then hand the socket to ws. */
export async function handleTunnelUpgrade<I>(req: IncomingMessage, socket: Duplex, head: Buffer, endpoint: TunnelEndpoint<I>): Promise<void> {
  socket.on("error", () => socket.destroy());
  const url = requestUrl(req);
  let identity: I;
  try {
    if (req.method !== "GET") throw new HttpError(405, { message: `Method ${req.method ?? ""} not allowed.` });
    identity = await admitDial(req, url, endpoint);
  } catch (err) {
    const { status, body } = refuse(req, err, endpoint);
    writeSocketError(socket, status, body);
    return;
  }
  if (socket.destroyed) return;
  // Read now: a closure here that kept `req` would keep the whole request for the tunnel's life,
  // as the socket's error listener shares this function's scope.
  const remoteAddress = req.socket.remoteAddress;
  endpoint.wss.handleUpgrade(req, socket, head, (ws) => {
    endpoint.upgrades.inc({ result: "upgraded", status: "101" });
    endpoint.onTunnel(ws, identity, remoteAddress);
  });
}

/** A tunnel route without upgrade headers: the same checks, then 426, as coderd answers. */
export async function handleTunnelPlainRequest<I>(req: IncomingMessage, res: ServerResponse, endpoint: TunnelEndpoint<I>): Promise<void> {
  try {
    await admitDial(req, requestUrl(req), endpoint);
    throw new HttpError(426, { message: "This endpoint requires a WebSocket upgrade.", detail: "send Connection: Upgrade and Upgrade: websocket" });
  } catch (err) {
    const { status, body } = refuse(req, err, endpoint);
    if (status === 426) res.setHeader("upgrade", "websocket");
    writeError(res, status, body);
  }
}

function requestUrl(req: IncomingMessage): URL {
  return new URL(req.url ?? "/", "http://agentgate.invalid");
}

/** The answer to a refused dial, counted and logged: at info for the dialler's fault, at error for ours. */
function refuse<I>(req: IncomingMessage, err: unknown, endpoint: TunnelEndpoint<I>): { status: number; body: ErrorBody } {
  const refusal =
    err instanceof HttpError
      ? { status: err.status, body: err.body }
      : { status: 500, body: { message: "Internal error." } };
  const failed = refusal.status >= 500 && refusal.status !== 503;
  endpoint.upgrades.inc({ result: failed ? "failed" : "refused", status: String(refusal.status) });
  const fields = { status: refusal.status, message: refusal.body.message, detail: refusal.body.detail, remote_address: req.socket.remoteAddress };
  // The database's own error goes to the log only (its text names the database's address).
  const cause = err instanceof HttpError ? err.cause : err;
  if (failed) endpoint.logger.error({ ...fields, err: cause ?? err }, `${endpoint.who} dial failed`);
  else if (cause !== undefined) endpoint.logger.warn({ ...fields, err: cause }, `${endpoint.who} dial refused: database unavailable`);
  else endpoint.logger.info(fields, `${endpoint.who} dial refused`);
  return refusal;
}
