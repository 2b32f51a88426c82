import { setMaxListeners } from "node:events";
import { createServer as createHttp1Server } from "node:http";
import { createServer as createHttp2Server, type ServerHttp2Session } from "node:http2";
import { createServer as createNetServer, type AddressInfo, type Socket } from "node:net";
import type { ConnectRouter } from "@connectrpc/connect";
import { WebSocketServer } from "ws";
import { Tailnet } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import type { AgentIdentity } from "../auth/agent-identity.js";
import type { ServerConfig } from "../config.js";
import { dashboardHandler } from "../dashboard/serve-dashboard.js";
import type { Batcher } from "../db/batcher.js";
import type { ConnectionRefresh } from "../db/queries/agent-connections.js";
import type { Logger } from "../log.js";
import { createHeartbeatBatcher } from "../tracker/heartbeat-batcher.js";
import { CURRENT_API_MAJOR } from "../protocol/agent-rpc.js";
import { RpcCore, type RpcCoreOptions, type RpcRegistration } from "../rpc/index.js";
import { dispatchHttpConnection, type HttpServers } from "../tunnel/http-dispatch.js";
import { TUNNEL_MAX_MESSAGE_BYTES } from "../tunnel/tunnel-limits.js";
import { admitPlainCaller, admitPlainStream, type AdmissionOptions } from "./agent-admission.js";
import type { ClientIdentity } from "../tailnet/peer-identity.js";
import { agentEndpoint } from "./agent-endpoint.js";
import type { AgentServerStore } from "./agent-store.js";
import { AgentTunnels, SNIFF_TIMEOUT_MS } from "./agent-tunnels.js";
import { admitClient, type ClientAdmissionOptions } from "./client-admission.js";
import { ClientTunnels } from "./client-tunnels.js";
import { connectUniversalHandlers, createConnectHandler, MAX_RPC_MESSAGE_BYTES, rpcErrorOf } from "./connect-handler.js";
import { servedApiMinor } from "./api-version.js";
import { ConnectionLimits } from "./connection-limits.js";
import { DialOverload } from "./dial-overload.js";
import { enforceHttp1HeaderTimeout, enforceHttp2FirstStreamTimeout } from "./header-timeout.js";
import { requestListener, upgradeListener, type TunnelRoutes } from "./http-routes.js";
import { LeanUnary } from "./lean-unary.js";
import { RequestBudgets } from "./request-budgets.js";
import { TunnelHttp2 } from "./tunnel-http2.js";
import { ServerMetrics } from "./metrics.js";
import type { IdentityWatch } from "./identity-watch.js";
import { TunnelIdentities } from "./tunnel-identities.js";

/** HTTP/2 streams (in-flight RPCs) per connection: each costs about 90 KB, so a bound keeps memory in check. */
export const MAX_CONCURRENT_RPCS_PER_CONNECTION = 100;
/** How long an idle HTTP/1.1 keep-alive connection stays open. */
const KEEP_ALIVE_TIMEOUT_MS = 60_000;

export interface AgentServerOptions {
  config: ServerConfig;
  store: AgentServerStore;
  logger: Logger;
  replicaId: string;
  /** Holds tunnels' identities and caches plain-port token lookups, kept current by identity events. */
  watch: IdentityWatch;
  /**
   * The Agent and Tailnet implementations: served with Connect, gRPC and gRPC-Web on the plain
   * port and in tunnels, and with DRPC in tunnels.
   */
  agentServices: readonly RpcRegistration[];
  /** Registers further Connect services (the control API), which authenticate their callers themselves. */
  routes?: (router: ConnectRouter) => void;
  /** Publishes `agt_connection_update` for an agent; must not throw. */
  publishConnectionUpdate: (identity: AgentIdentity) => void;
  metrics?: ServerMetrics;
  /** How clients of the coordination route are admitted; without it that route is not served. */
  clientAdmission?: ClientAdmissionOptions;
  /**
   * Things to close at shutdown once every tunnel has drained (batchers' final flushes), in
   * order. The database itself is the caller's to close afterwards.
   */
  closeOnShutdown?: { close(): Promise<void> }[];
}

/**
 * The agentgate HTTP server: one port for HTTP/1.1 and h2c, serving the agent endpoint
 * (WebSocket → yamux → Connect), the client coordination endpoint (the same, Tailnet only), the
 * same Connect services for plain-port callers, and
 * /healthz, /readyz, /metrics.
 */
export class AgentServer {
  readonly metrics: ServerMetrics;
  private readonly net = createNetServer();
  private readonly servers: HttpServers;
  private readonly wss: WebSocketServer;
  private readonly tunnels: AgentTunnels;
  private readonly clientTunnels: ClientTunnels;
  private readonly plainSockets = new Set<Socket>();
  private readonly http2Sessions = new Set<ServerHttp2Session>();
  private readonly heartbeats: Batcher<ConnectionRefresh>;
  private readonly overload: DialOverload;
  private readonly connectionLimits: ConnectionLimits;
  private readonly shutdownController = new AbortController();
  /** The newest API version offered to agents, e.g. "2.13" (see `servedApiMinor`). */
  readonly apiVersion: string;
  private shuttingDown = false;
  private closed: Promise<void> | undefined;
  private readonly tunnelHttp2: TunnelHttp2 | undefined;

  private constructor(private readonly options: AgentServerOptions) {
    // Every RPC in flight links its context to this signal: thousands of listeners are expected.
    setMaxListeners(0, this.shutdownController.signal);
    this.metrics = options.metrics ?? new ServerMetrics();
    const { logger, store, config } = options;
    this.heartbeats = createHeartbeatBatcher((refreshes) => store.writeHeartbeats(refreshes), logger);
    this.metrics.watchBatcher(this.heartbeats);
    const identities = new TunnelIdentities<AgentIdentity>();
    const clientIdentities = new TunnelIdentities<ClientIdentity>();
    // The RPC core serves DRPC: the same implementations, metrics and limits as Connect's router.
    const rpcOptions: RpcCoreOptions = {
      observer: (service, method, code, seconds) => this.metrics.observeRpc(service, method, code, seconds),
      shutdownSignal: this.shutdownController.signal,
      errorOf: rpcErrorOf,
      readMaxBytes: MAX_RPC_MESSAGE_BYTES,
      writeMaxBytes: MAX_RPC_MESSAGE_BYTES,
    };
    const rpcCore = new RpcCore(options.agentServices, rpcOptions);
    // A client tunnel's DRPC reaches the Tailnet service alone, as its Connect requests do.
    const clientRpcCore = new RpcCore(
      options.agentServices.filter(([service]) => service.typeName === Tailnet.typeName),
      rpcOptions,
    );
    const admission: AdmissionOptions = {
      lookup: store.lookupAgentByToken,
      replicaId: options.replicaId,
      apiMinor: servedApiMinor((path) => rpcCore.method(path)?.impl !== undefined),
    };
    // A dial reads its token afresh (once per tunnel); a plain-port call goes through the cache.
    const plainAdmission: AdmissionOptions = { ...admission, lookup: options.watch.lookup };
    this.apiVersion = `${CURRENT_API_MAJOR}.${admission.apiMinor}`;
    const budgets = new RequestBudgets(config);
    const connect = createConnectHandler({
      routes(router) {
        for (const [service, implementation] of options.agentServices) router.service(service, implementation);
        options.routes?.(router);
      },
      metrics: this.metrics,
      tunnelIdentity: (req) => identities.of(req),
      clientIdentity: (req) => clientIdentities.of(req),
      resolveCaller: (header) => admitPlainCaller(header, plainAdmission),
      shutdownSignal: this.shutdownController.signal,
      limits: { ...config, adminToken: config.adminToken },
      budgets,
    });
    // Node's own headers timeout never runs on connections handed over by hand; enforceHttp1HeaderTimeout keeps it.
    const http1 = createHttp1Server({ requestTimeout: 0, headersTimeout: 0, keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS });
    const http2 = createHttp2Server({ settings: { maxConcurrentStreams: MAX_CONCURRENT_RPCS_PER_CONNECTION } });
    let lean: LeanUnary | undefined;
    if (config.leanUnary) {
      lean = new LeanUnary({
        core: rpcCore,
        tunnelIdentity: (session) => identities.ofSession(session),
        passOver: (session) => clientIdentities.ofSession(session) !== undefined,
        admit: (headers) => admitPlainStream(headers, plainAdmission),
        observer: (service, method, code, seconds) => this.metrics.observeRpc(service, method, code, seconds),
        readMaxBytes: MAX_RPC_MESSAGE_BYTES,
        onUnauthenticated: () => this.metrics.requestsRefused.inc({ reason: "unauthenticated" }),
      });
      lean.install(http2);
    }
    // `--tunnel-http2 agentgate`: agent tunnels' HTTP/2 on agentgate's own connection.
    this.tunnelHttp2 =
      config.tunnelHttp2 === "agentgate"
        ? new TunnelHttp2({
            lean,
            handlers: connectUniversalHandlers({
              routes(router) {
                for (const [service, implementation] of options.agentServices) router.service(service, implementation);
              },
              metrics: this.metrics,
              shutdownSignal: this.shutdownController.signal,
            }),
            maxConcurrentStreams: MAX_CONCURRENT_RPCS_PER_CONNECTION,
            budgets,
            bodyIdleTimeoutMs: config.bodyIdleTimeoutMs,
            onRefused: (reason) => this.metrics.requestsRefused.inc({ reason }),
            logger,
          })
        : undefined;
    this.servers = { http1, http2 };
    const isShuttingDown = () => this.shuttingDown;
    this.tunnels = new AgentTunnels({
      config,
      store,
      logger,
      metrics: this.metrics,
      servers: this.servers,
      identities,
      watch: options.watch,
      rpcCore,
      heartbeats: this.heartbeats,
      publishConnectionUpdate: options.publishConnectionUpdate,
      isShuttingDown,
      ...(this.tunnelHttp2 === undefined ? {} : { tunnelHttp2: this.tunnelHttp2 }),
    });
    // The tunnel speaks no subprotocol: whatever a client offers, the 101 names none, as coderd's does.
    this.wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: TUNNEL_MAX_MESSAGE_BYTES, handleProtocols: () => false });
    this.overload = new DialOverload({
      maxLagMs: config.overloadLagMs,
      maxPendingDials: config.maxPendingDials,
      maxDialsPerSecond: config.maxDialsPerSecond,
      onRefusal: (reason) => this.metrics.overloadRefusals.inc({ reason }),
    });
    this.connectionLimits = new ConnectionLimits({
      maxConnections: config.maxConnections,
      maxConnectionsPerAddress: config.maxConnectionsPerAddress,
      reserve: config.connectionReserve,
    });
    this.clientTunnels = new ClientTunnels({
      config,
      logger,
      metrics: this.metrics,
      servers: this.servers,
      identities: clientIdentities,
      rpcCore: clientRpcCore,
      isShuttingDown,
    });
    const endpoints: TunnelRoutes = {
      agent: agentEndpoint({
        admission,
        overload: this.overload,
        wss: this.wss,
        metrics: this.metrics,
        logger,
        isShuttingDown,
        onTunnel: (ws, admitted, remoteAddress) => this.tunnels.run(ws, admitted, remoteAddress),
      }),
    };
    const { clientAdmission } = options;
    if (clientAdmission !== undefined) {
      endpoints.client = (agentId) => ({
        who: "client",
        admit: (req, url) => admitClient({ headers: req.headers, url, agentId }, clientAdmission),
        wss: this.wss,
        upgrades: this.metrics.clientUpgrades,
        logger,
        isShuttingDown,
        onTunnel: (ws, identity, remoteAddress) => this.clientTunnels.run(ws, identity, remoteAddress),
      });
    }
    const onRequest = requestListener({ store, metrics: this.metrics, endpoints, dashboard: dashboardHandler(), connect });
    http1.on("request", onRequest);
    http2.on("request", onRequest);
    http1.on("upgrade", upgradeListener(endpoints));
    http1.on("clientError", (_err, socket) => socket.destroy());
    const headerTimedOut = () => this.metrics.requestsRefused.inc({ reason: "header_timeout" });
    enforceHttp1HeaderTimeout(http1, config.headerTimeoutMs, headerTimedOut);
    http2.on("sessionError", () => undefined);
    http2.on("session", (session: ServerHttp2Session) => {
      identities.adoptSession(session);
      clientIdentities.adoptSession(session);
      // A tunnel's sessions belong to an admitted agent, bounded by its stream and byte limits.
      if (!identities.isTunnel(session) && !clientIdentities.isTunnel(session)) enforceHttp2FirstStreamTimeout(session, config.headerTimeoutMs, headerTimedOut);
      this.http2Sessions.add(session);
      session.once("close", () => this.http2Sessions.delete(session));
    });
    this.net.on("connection", (socket) => {
      const refused = this.connectionLimits.admit(socket);
      if (refused !== undefined) {
        this.metrics.connectionsRefused.inc({ reason: refused });
        socket.on("error", () => undefined);
        socket.destroy();
        return;
      }
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

  /** TCP connections open right now. */
  get connectionCount(): number {
    return this.connectionLimits.count;
  }

  /** Agent tunnels open right now. */
  get tunnelCount(): number {
    return this.tunnels.count;
  }

  /** Client tunnels open right now. */
  get clientTunnelCount(): number {
    return this.clientTunnels.count;
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
    this.tunnelHttp2?.goAwayAll();
    this.servers.http1.closeIdleConnections();
    await Promise.all([this.tunnels.closeAll(), this.clientTunnels.closeAll()]);
    for (const socket of this.plainSockets) socket.destroy();
    this.servers.http1.close();
    this.servers.http2.close();
    this.wss.close();
    this.overload.close();
    await this.heartbeats.close();
    for (const closeable of this.options.closeOnShutdown ?? []) await closeable.close();
    await listening;
  }
}
