import { setMaxListeners } from "node:events";
import { createServer as createHttp1Server, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttp2Server, type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Session } from "node:http2";
import { createServer as createNetServer, type AddressInfo, type Socket } from "node:net";
import type { ConnectRouter } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { WebSocketServer, type WebSocket } from "ws";
import { identityOf, type AgentIdentity } from "../auth/agent-identity.js";
import { negotiateApiVersion } from "../auth/api-version.js";
import { authenticateAgent, type LookupAgentByToken } from "../auth/authenticate.js";
import { HttpError, writeError } from "../auth/http-error.js";
import { extractToken } from "../auth/token.js";
import type { ServerConfig } from "../config.js";
import { dashboardHandler } from "../dashboard/serve-dashboard.js";
import type { Logger } from "../log.js";
import { CLOSE_GOING_AWAY, ConnectionTracker, type ConnectionStore } from "../tracker/connection-tracker.js";
import { HeartbeatBatcher, type Heartbeat } from "../tracker/heartbeat-batcher.js";
import { dispatchHttpConnection, type HttpServers } from "../tunnel/http-dispatch.js";
import { webSocketDuplex } from "../tunnel/websocket-duplex.js";
import { GoAwayCode, Session, YamuxErrorCode, type Stream } from "../yamux/index.js";
import { AGENT_RPC_PATH, handleAgentPlainRequest, handleAgentUpgrade, type AgentEndpointOptions } from "./agent-endpoint.js";
import { createConnectHandler, tunnelIdentity } from "./connect-handler.js";
import { ServerMetrics } from "./metrics.js";

/**
 * Largest WebSocket message accepted from an agent. A yamux Data frame can be a full 256 KiB
 * window plus its 12-byte header, and some clients send a frame as one message: 1 MiB leaves room.
 */
export const MAX_WEBSOCKET_MESSAGE_BYTES = 1024 * 1024;
/** HTTP/2 streams (in-flight RPCs) per connection; unbounded, each costs ~90 KB (design.md). */
export const MAX_CONCURRENT_RPCS_PER_CONNECTION = 100;
/** A connection must show its first bytes (HTTP/2 preface or request line) within this time. */
const SNIFF_TIMEOUT_MS = 10_000;
/** WebSocket close code when the agent broke the yamux protocol (RFC 6455 §7.4.1). */
const CLOSE_PROTOCOL_ERROR = 1002;
/** A close frame's reason must fit in 123 bytes. */
const MAX_CLOSE_REASON_BYTES = 123;
/** After a close frame to an agent that stopped reading, how long before the socket is cut. */
const CLOSE_HANDSHAKE_GRACE_MS = 1_000;
/** How often refreshed connection times are written, many agents per statement (C9: ≤ 1 s). */
const HEARTBEAT_FLUSH_MS = 1_000;

/** What the server needs from the database, as narrow functions. */
export interface AgentServerStore extends Omit<ConnectionStore, "refresh"> {
  lookupAgentByToken: LookupAgentByToken;
  /** Writes many agents' connection-time refreshes in one statement. */
  writeHeartbeats(beats: Heartbeat[]): Promise<void>;
  /** Resolves when the database answers and is migrated; for /readyz. */
  ready(): Promise<void>;
}

export interface AgentServerOptions {
  config: ServerConfig;
  store: AgentServerStore;
  logger: Logger;
  replicaId: string;
  /** Registers the Agent and Tailnet services. */
  routes: (router: ConnectRouter) => void;
  /** Publishes `agt_connection_update` for an agent; must not throw. */
  publishConnectionUpdate: (identity: AgentIdentity) => void;
  metrics?: ServerMetrics;
  /**
   * Things to close at shutdown once every tunnel has drained (batchers' final flushes), in
   * order. The database itself is the caller's to close afterwards.
   */
  closeOnShutdown?: { close(): Promise<void> }[];
}

/** One live agent tunnel. */
interface Tunnel {
  identity: AgentIdentity;
  ws: WebSocket;
  session: Session;
  tracker: ConnectionTracker;
  /** Resolves when the tunnel is gone and its disconnect is written. */
  done: Promise<void>;
}

/**
 * The agentgate HTTP server: one port for HTTP/1.1 and h2c, serving the agent endpoint
 * (WebSocket → yamux → Connect), the same Connect services for plain-port callers, and
 * /healthz, /readyz, /metrics.
 */
export class AgentServer {
  readonly metrics: ServerMetrics;
  private readonly net = createNetServer();
  private readonly servers: HttpServers;
  private readonly wss: WebSocketServer;
  private readonly tunnels = new Set<Tunnel>();
  private readonly plainSockets = new Set<Socket>();
  private readonly http2Sessions = new Set<ServerHttp2Session>();
  private readonly heartbeats: HeartbeatBatcher;
  private readonly shutdownController = new AbortController();
  private shuttingDown = false;
  private closed: Promise<void> | undefined;

  private constructor(private readonly options: AgentServerOptions) {
    // Every RPC in flight links its context to this signal: thousands of listeners are expected.
    setMaxListeners(0, this.shutdownController.signal);
    this.metrics = options.metrics ?? new ServerMetrics();
    const { logger } = options;
    this.heartbeats = new HeartbeatBatcher({ write: (beats) => options.store.writeHeartbeats(beats), intervalMs: HEARTBEAT_FLUSH_MS, logger });
    this.metrics.watchBatcher(this.heartbeats);
    const connect = createConnectHandler({
      routes: options.routes,
      metrics: this.metrics,
      resolveCaller: (header) => this.resolvePlainCaller(header),
      shutdownSignal: this.shutdownController.signal,
    });
    const http1 = createHttp1Server({ requestTimeout: 0, headersTimeout: 30_000, keepAliveTimeout: 60_000 });
    const http2 = createHttp2Server({ settings: { maxConcurrentStreams: MAX_CONCURRENT_RPCS_PER_CONNECTION } });
    const endpoint: AgentEndpointOptions = {
      lookup: options.store.lookupAgentByToken,
      wss: (this.wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_WEBSOCKET_MESSAGE_BYTES })),
      replicaId: options.replicaId,
      metrics: this.metrics,
      logger,
      isShuttingDown: () => this.shuttingDown,
      onTunnel: (ws, identity) => this.runTunnel(ws, identity),
    };
    const serveDashboard = dashboardHandler();
    const onRequest = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => {
      const path = (req.url ?? "/").split("?", 1)[0];
      if (req.method === "GET" && path === "/healthz") {
        res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
      } else if (req.method === "GET" && path === "/readyz") {
        options.store.ready().then(
          () => res.writeHead(200, { "content-type": "text/plain" }).end("ok\n"),
          (err: unknown) => writeError(res as ServerResponse, 503, { message: "Not ready.", detail: err instanceof Error ? err.message : String(err) }),
        );
      } else if (req.method === "GET" && path === "/metrics") {
        this.metrics.registry.metrics().then(
          (text) => res.writeHead(200, { "content-type": this.metrics.registry.contentType }).end(text),
          (err: unknown) => writeError(res as ServerResponse, 500, { message: "Collecting metrics failed.", detail: err instanceof Error ? err.message : String(err) }),
        );
      } else if (path === AGENT_RPC_PATH && req.httpVersionMajor === 1) {
        void handleAgentPlainRequest(req as IncomingMessage, res as ServerResponse, endpoint);
      } else if (!serveDashboard(req, res)) {
        connect(req, res);
      }
    };
    http1.on("request", onRequest);
    http2.on("request", onRequest);
    http1.on("upgrade", (req: IncomingMessage, socket, head: Buffer) => {
      if ((req.url ?? "").split("?", 1)[0] === AGENT_RPC_PATH) {
        void handleAgentUpgrade(req, socket, head, endpoint);
      } else {
        socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      }
    });
    http1.on("clientError", (_err, socket) => socket.destroy());
    http2.on("sessionError", () => undefined);
    http2.on("session", (session: ServerHttp2Session) => {
      this.http2Sessions.add(session);
      session.once("close", () => this.http2Sessions.delete(session));
    });
    this.servers = { http1, http2 };
    this.net.on("connection", (socket) => {
      // Without it small RPC frames wait for delayed ACKs: ~44 ms median latency was measured.
      socket.setNoDelay(true);
      this.plainSockets.add(socket);
      socket.once("close", () => this.plainSockets.delete(socket));
      socket.on("error", () => undefined);
      dispatchHttpConnection(socket, this.servers, SNIFF_TIMEOUT_MS);
    });
  }

  /** Starts listening on `config.listen` (port 0 picks a free port; see `address`). */
  static async start(options: AgentServerOptions): Promise<AgentServer> {
    const server = new AgentServer(options);
    const { host, port } = options.config.listen;
    await new Promise<void>((resolve, reject) => {
      server.net.once("error", reject);
      server.net.listen(port, host, () => {
        server.net.off("error", reject);
        resolve();
      });
    });
    return server;
  }

  /** This process's replica id, recorded as `last_connected_replica_id`. */
  get replicaId(): string {
    return this.options.replicaId;
  }

  get address(): AddressInfo {
    return this.net.address() as AddressInfo;
  }

  /** Tunnels open right now. */
  get tunnelCount(): number {
    return this.tunnels.size;
  }

  private async resolvePlainCaller(header: Headers): Promise<AgentIdentity> {
    const headers = { cookie: header.get("cookie") ?? undefined, "coder-session-token": header.get("coder-session-token") ?? undefined, authorization: header.get("authorization") ?? undefined };
    try {
      const row = await authenticateAgent(extractToken(headers, undefined), this.options.store.lookupAgentByToken);
      const apiVersion = negotiateApiVersion(header.get("coder-agent-api-version"));
      return identityOf(row, apiVersion, this.options.replicaId);
    } catch (err) {
      if (err instanceof HttpError) throw new ConnectError(err.message, httpStatusToCode(err.status));
      throw err;
    }
  }

  private runTunnel(ws: WebSocket, identity: AgentIdentity): void {
    const { config, logger: rootLogger } = this.options;
    const logger = rootLogger.child({ agent_id: identity.agentId, workspace_id: identity.workspaceId });
    const transport = webSocketDuplex(ws);
    const session = new Session(transport, { role: "server", maxStreams: config.maxStreamsPerAgent, closeTimeoutMs: config.shutdownGraceMs });
    session.on("stream", (stream: Stream) => {
      (stream as Stream & { [tunnelIdentity]?: AgentIdentity })[tunnelIdentity] = identity;
      dispatchHttpConnection(stream, this.servers, SNIFF_TIMEOUT_MS);
    });
    session.on("error", (err: Error) => {
      this.metrics.yamuxProtocolErrors.inc();
      logger.warn({ err }, "yamux session error");
    });
    const evict = (code: number, reason: string) => {
      this.metrics.evictions.inc({ reason });
      if (reason === "ping timeout") this.metrics.pingTimeouts.inc();
      closeWebSocket(ws, code, reason);
      session.destroy();
    };
    const tracker = new ConnectionTracker({
      agentId: identity.agentId,
      workspaceId: identity.workspaceId,
      buildId: identity.buildId,
      socket: ws,
      store: {
        connect: (agentId, at) => this.options.store.connect(agentId, at),
        refresh: (agentId, connection, at) => this.heartbeats.add({ agentId, connection, at }),
        disconnect: (agentId, connection, at) => {
          this.heartbeats.forget(agentId, connection);
          return this.options.store.disconnect(agentId, connection, at);
        },
        latestBuildId: (workspaceId) => this.options.store.latestBuildId(workspaceId),
      },
      publishConnectionUpdate: () => this.options.publishConnectionUpdate(identity),
      evict,
      updateIntervalMs: config.agentUpdateIntervalMs,
      inactiveTimeoutMs: config.agentInactiveTimeoutMs,
      logger,
      onPing: () => this.metrics.pings.inc(),
    });
    let resolveDone!: () => void;
    const tunnel: Tunnel = { identity, ws, session, tracker, done: new Promise((r) => (resolveDone = r)) };
    this.tunnels.add(tunnel);
    this.metrics.connectedAgents.inc();
    logger.info({ api_version: identity.apiVersion, build_number: identity.buildNumber }, "agent connected");
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      session.destroy();
      this.metrics.connectedAgents.dec();
      void tracker.stop().finally(() => {
        this.tunnels.delete(tunnel);
        logger.info("agent disconnected");
        resolveDone();
      });
    };
    ws.once("close", end);
    session.once("close", () => {
      if (this.shuttingDown) closeWebSocket(ws, CLOSE_GOING_AWAY, "server shutting down");
      else if (session.error?.code === YamuxErrorCode.Protocol) closeWebSocket(ws, CLOSE_PROTOCOL_ERROR, session.error.message);
      else closeWebSocket(ws, 1000, "");
      end();
    });
    tracker.start().catch((err: unknown) => logger.error({ err }, "recording agent connection failed"));
  }

  /**
   * Graceful shutdown: refuse new agents, send every tunnel a yamux GoAway and give open RPCs
   * up to the shutdown grace, write every disconnect, flush the heartbeats. The caller closes
   * the database afterwards.
   */
  shutdown(): Promise<void> {
    this.closed ??= this.doShutdown();
    return this.closed;
  }

  private async doShutdown(): Promise<void> {
    this.shuttingDown = true;
    const listening = new Promise<void>((resolve) => this.net.close(() => resolve()));
    // Streaming handlers end now; unary calls in flight run on. HTTP/2 GOAWAY lets every
    // connection finish what it has and take nothing new, so tunnels drain on their own.
    this.shutdownController.abort();
    for (const session of this.http2Sessions) session.close();
    this.servers.http1.closeIdleConnections();
    const tunnels = [...this.tunnels];
    await Promise.all(
      tunnels.map(async (t) => {
        await t.session.close(GoAwayCode.Normal).catch(() => undefined);
        closeWebSocket(t.ws, CLOSE_GOING_AWAY, "server shutting down");
        t.session.destroy();
        await t.done;
      }),
    );
    for (const socket of this.plainSockets) socket.destroy();
    this.servers.http1.close();
    this.servers.http2.close();
    this.wss.close();
    await this.heartbeats.close();
    for (const closeable of this.options.closeOnShutdown ?? []) await closeable.close();
    await listening;
  }
}

/**
 * Starts the close handshake and cuts the socket if the agent doesn't finish it promptly: one
 * that stopped reading never would, and ws would hold it for 30 s.
 */
function closeWebSocket(ws: WebSocket, code: number, reason: string): void {
  if (ws.readyState === ws.OPEN) ws.close(code, truncateUtf8(reason, MAX_CLOSE_REASON_BYTES));
  if (ws.readyState !== ws.CLOSED) setTimeout(() => ws.terminate(), CLOSE_HANDSHAKE_GRACE_MS).unref();
}

function truncateUtf8(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text);
  if (bytes.length <= maxBytes) return text;
  // Cut on a character boundary: a partial UTF-8 sequence would make ws reject the frame.
  let end = maxBytes;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString();
}

function httpStatusToCode(status: number): Code {
  switch (status) {
    case 400:
      return Code.InvalidArgument;
    case 401:
      return Code.Unauthenticated;
    case 403:
      return Code.PermissionDenied;
    case 503:
      return Code.Unavailable;
    default:
      return Code.Internal;
  }
}
