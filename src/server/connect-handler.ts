import { Code, ConnectError, createConnectRouter, createContextValues, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip, connectNodeAdapter } from "@connectrpc/connect-node";
import { Agent } from "../../gen/coder/agent/v2/agent_pb.js";
import { Tailnet } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { databaseUnavailable } from "../agentapi/rpc-errors.js";
import { agentIdentityKey, type AgentIdentity } from "../auth/agent-identity.js";
import { clientIdentityKey, type ClientIdentity } from "../tailnet/peer-identity.js";
import { isDatabaseUnavailable } from "../db/errors.js";
import type { ServerMetrics } from "./metrics.js";
import type { RequestBudgets } from "./request-budgets.js";
import { RequestGate, type RequestGateLimits } from "./request-gate.js";

/** The handler connect-node builds: it serves http.Server and http2 servers alike. */
export type NodeHandler = ReturnType<typeof connectNodeAdapter>;
type NodeServerRequest = Parameters<NodeHandler>[0];
type NodeServerResponse = Parameters<NodeHandler>[1];

/**
 * One RPC message, either way, at most 4 MiB, as coderd's DRPC limit (a larger one is
 * ResourceExhausted): a manifest with a 512,000-byte script fits with room.
 */
export const MAX_RPC_MESSAGE_BYTES = 4 * 1024 * 1024;

/**
 * The services an agent calls, with its agent token on the plain port. Other services on the
 * router (the control API) authenticate their callers themselves and never see an agent identity.
 */
const AGENT_SERVICES: ReadonlySet<string> = new Set([Agent.typeName, Tailnet.typeName]);

/** Resolves a plain-port caller from its request headers; throws a ConnectError when it can't. */
export type ResolveCallerIdentity = (header: Headers) => Promise<AgentIdentity>;

export interface ConnectHandlerOptions {
  routes: (router: ConnectRouter) => void;
  metrics: ServerMetrics;
  /** The identity an agent tunnel's request carries; undefined on the plain port. */
  tunnelIdentity: (req: NodeServerRequest) => AgentIdentity | undefined;
  /** The identity a client tunnel's request carries; undefined elsewhere. */
  clientIdentity?: (req: NodeServerRequest) => ClientIdentity | undefined;
  resolveCaller: ResolveCallerIdentity;
  /** Aborted at shutdown so streaming handlers end. */
  shutdownSignal?: AbortSignal;
  /** What requests pass before their bodies are read: credentials and body idle time. */
  limits: RequestGateLimits;
  /** Request bytes in flight, shared with every other path that reads request bodies. */
  budgets: RequestBudgets;
}

/**
 * What a handler's failure is answered as, on every path: a database that can't be reached is
 * Unavailable, and its driver's text (the database's address) never reaches the caller,
 * whichever handler let it through; anything else as `ConnectError.from` makes it.
 */
export function rpcErrorOf(err: unknown): ConnectError {
  return !(err instanceof ConnectError) && isDatabaseUnavailable(err) ? databaseUnavailable(err) : ConnectError.from(err);
}

/**
 * The Connect router for the Agent and Tailnet services, as one Node request handler for
 * HTTP/1.1 and HTTP/2, in tunnels and on the plain port alike. A tunnel's requests carry the
 * identity fixed at the upgrade; plain-port requests are authenticated per call by token, from
 * the headers, before the body is read ({@link RequestGate}).
 * A
 * client tunnel reaches the Tailnet service alone: anything else there is Unimplemented, as the
 * client route of coderd serves nothing else.
 */
export function createConnectHandler(options: ConnectHandlerOptions): NodeHandler {
  const { metrics } = options;
  const gate = new RequestGate({
    limits: options.limits,
    budgets: options.budgets,
    metrics,
    tunnelIdentity: options.tunnelIdentity,
    inClientTunnel: (req) => options.clientIdentity?.(req as NodeServerRequest) !== undefined,
    resolveCaller: options.resolveCaller,
  });
  const handler = connectNodeAdapter({
    routes(router) {
      options.routes(router);
      gate.noteHandlers(router.handlers);
    },
    interceptors: [observeRpcs(metrics)],
    readMaxBytes: MAX_RPC_MESSAGE_BYTES,
    writeMaxBytes: MAX_RPC_MESSAGE_BYTES,
    shutdownSignal: options.shutdownSignal,
    contextValues(req) {
      const values = createContextValues();
      const identity = gate.identityOf(req);
      if (identity !== undefined) return values.set(agentIdentityKey, identity);
      const client = options.clientIdentity?.(req);
      if (client !== undefined) values.set(clientIdentityKey, client);
      return values;
    },
    fallback: answerUnknownRoute,
  });
  const next = handler as unknown as (req: unknown, res: unknown) => void;
  return (req, res) => gate.handle(req, res as unknown as Parameters<RequestGate["handle"]>[1], next);
}

/**
 * The router's handlers by request path, with the same interceptor and limits as
 * {@link createConnectHandler}, for a server that speaks HTTP/2 itself (an agent tunnel's own
 * connection): requests reach them as connect's universal requests.
 */
export function connectUniversalHandlers(options: Pick<ConnectHandlerOptions, "routes" | "metrics" | "shutdownSignal">): ReadonlyMap<string, UniversalHandler> {
  const router = createConnectRouter({
    interceptors: [observeRpcs(options.metrics)],
    readMaxBytes: MAX_RPC_MESSAGE_BYTES,
    writeMaxBytes: MAX_RPC_MESSAGE_BYTES,
    shutdownSignal: options.shutdownSignal,
    acceptCompression: [compressionGzip, compressionBrotli],
  });
  options.routes(router);
  return new Map(router.handlers.map((h) => [h.requestPath, h]));
}

/** Counts and times every RPC, and keeps agent services to agents and a client tunnel to Tailnet. */
function observeRpcs(metrics: ServerMetrics): Interceptor {
  return (next) => async (req) => {
    const method = req.method.name;
    const service = req.service.typeName;
    const stop = metrics.rpcSeconds.startTimer({ method });
    try {
      if (req.contextValues.get(clientIdentityKey) !== undefined) {
        if (service !== Tailnet.typeName) throw new ConnectError(`${service} is not served on a client connection`, Code.Unimplemented);
      } else if (AGENT_SERVICES.has(service) && req.contextValues.get(agentIdentityKey) === undefined) {
        // The gate authenticated every agent call before its body was read; none can get here without.
        throw new ConnectError("agent token required", Code.Unauthenticated);
      }
      const res = await next(req);
      metrics.rpcs.inc({ service, method, code: "ok" });
      return res;
    } catch (err) {
      const connectErr = rpcErrorOf(err);
      metrics.rpcs.inc({ service, method, code: Code[connectErr.code] ?? "unknown" });
      throw connectErr;
    } finally {
      stop();
    }
  };
}

/**
 * An unknown path: gRPC clients get status 12 (Unimplemented) in a trailers-only response,
 * everyone else a 404, which Connect clients also read as Unimplemented. On HTTP/2 the status
 * must travel in one HEADERS frame that ends the stream: headers followed by an empty DATA frame
 * is a response without trailers, which grpc-go reports as Internal.
 */
function answerUnknownRoute(req: NodeServerRequest, res: NodeServerResponse): void {
  const contentType = req.headers["content-type"] ?? "";
  const message = `unknown method ${req.url ?? ""}`;
  // Drain the body so the connection stays usable.
  req.resume();
  if (contentType.startsWith("application/grpc")) {
    const headers = { "content-type": contentType, "grpc-status": String(Code.Unimplemented), "grpc-message": encodeURIComponent(message) };
    if ("stream" in res) res.stream.respond({ ":status": 200, ...headers }, { endStream: true });
    else res.writeHead(200, headers).end();
    return;
  }
  res.writeHead(404, { "content-type": "application/json" });
  res.end(JSON.stringify({ code: "unimplemented", message }));
}
