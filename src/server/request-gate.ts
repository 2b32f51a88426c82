import type { IncomingMessage, ServerResponse } from "node:http";
import { constants as http2Constants, type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, codeToString } from "@connectrpc/connect/protocol-connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { Agent } from "../../gen/coder/agent/v2/agent_pb.js";
import { Tailnet } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { ControlService } from "../../gen/agentgate/control/v1/control_pb.js";
import type { AgentIdentity } from "../auth/agent-identity.js";
import { requireAdminToken } from "../control/admin-auth.js";
import { API_VERSION_HEADER, SESSION_TOKEN_HEADER } from "../protocol/agent-rpc.js";
import type { ByteBudget } from "./byte-budget.js";
import { chargeBudget, type BudgetLevel, type RequestBudgets } from "./request-budgets.js";
import type { ServerMetrics } from "./metrics.js";

type GateRequest = IncomingMessage | Http2ServerRequest;
type GateResponse = ServerResponse | Http2ServerResponse;

/** The limits a gate enforces, from the server's config (the byte limits are its budgets'). */
export interface RequestGateLimits {
  /** A request body pausing longer than this is cut; requests of streaming-request calls are exempt. */
  bodyIdleTimeoutMs: number;
  /** The control API's bearer token; undefined: the control API refuses every call. */
  adminToken: string | undefined;
}

export interface RequestGateOptions {
  limits: RequestGateLimits;
  /** Request bytes held, per connection, agent and process. */
  budgets: RequestBudgets;
  metrics: ServerMetrics;
  /** The identity a tunnel's request carries; undefined on the plain port. */
  tunnelIdentity: (req: GateRequest) => AgentIdentity | undefined;
  /** True for a request in a client's tunnel: admitted at its dial, it needs no agent token. */
  inClientTunnel?: (req: GateRequest) => boolean;
  /** Authenticates a plain-port agent call from its headers; throws a ConnectError when it can't. */
  resolveCaller: (header: Headers) => Promise<AgentIdentity>;
}

/** Why a request was refused before or while its body came in, for `agentgate_requests_refused_total`. */
export type RequestRefusal = "unauthenticated" | "body_idle" | "connection_bytes" | "agent_bytes" | "process_bytes";

const AGENT_SERVICE_PREFIXES = [Agent.typeName, Tailnet.typeName].map((name) => `/${name}/`);
const CONTROL_SERVICE_PREFIX = `/${ControlService.typeName}/`;

/**
 * What every Connect request passes before the Connect handler reads a byte of its body:
 *
 * - Credentials from headers first: the admin token for the control API (everywhere), the agent
 *   token for agent services on the plain port. A refused request is answered at once and its
 *   connection closed; its body is never read, so it can't cost memory or parsing.
 * - Request bytes in flight are charged to the connection, the agent's tunnel, and the process
 *   (a declared Content-Length up front, the rest as it arrives). Past a limit the call is refused
 *   (ResourceExhausted before the body, a reset stream or a closed connection during it).
 * - A body that pauses for longer than the body idle timeout is cut.
 */
export class RequestGate {
  private readonly authenticated = new WeakMap<GateRequest, AgentIdentity>();
  /** Request paths of client- and bidi-streaming calls, whose bodies may rightly pause for long. */
  private readonly streamingRequestPaths = new Set<string>();

  constructor(private readonly options: RequestGateOptions) {}

  /** Learns which calls stream their requests, from the router's handlers. */
  noteHandlers(handlers: readonly UniversalHandler[]): void {
    for (const h of handlers) {
      if (h.method.methodKind === "client_streaming" || h.method.methodKind === "bidi_streaming") this.streamingRequestPaths.add(h.requestPath);
    }
  }

  /** The agent a request is served as: its tunnel's, or the one its token proved on the plain port. */
  identityOf(req: GateRequest): AgentIdentity | undefined {
    return this.options.tunnelIdentity(req) ?? this.authenticated.get(req);
  }

  /** Admits `req` and then hands it to `next`, or answers it with a refusal. */
  handle(req: GateRequest, res: GateResponse, next: (req: GateRequest, res: GateResponse) => void): void {
    const path = (req.url ?? "/").split("?", 1)[0]!;
    const tunnel = this.options.tunnelIdentity(req);
    const meter = this.meter(req, res, path, tunnel);
    if (meter === undefined) return;
    try {
      if (path.startsWith(CONTROL_SERVICE_PREFIX)) requireAdminToken(credentialHeaders(req), this.options.limits.adminToken);
    } catch (err) {
      this.refuse(req, res, "unauthenticated", ConnectError.from(err));
      return;
    }
    if (tunnel !== undefined || this.options.inClientTunnel?.(req) === true || !AGENT_SERVICE_PREFIXES.some((p) => path.startsWith(p))) {
      next(req, res);
      return;
    }
    this.options.resolveCaller(credentialHeaders(req)).then(
      (identity) => {
        if (isGone(req, res)) return;
        this.authenticated.set(req, identity);
        next(req, res);
      },
      (err: unknown) => {
        const connectErr = ConnectError.from(err);
        this.refuse(req, res, connectErr.code === Code.Unauthenticated || connectErr.code === Code.PermissionDenied ? "unauthenticated" : undefined, connectErr);
      },
    );
  }

  /**
   * Charges the request's bytes as they arrive and runs its body idle timer. Returns undefined
   * when the request was refused on its declared length.
   */
  private meter(req: GateRequest, res: GateResponse, path: string, tunnel: AgentIdentity | undefined): true | undefined {
    const budget = this.connectionBudget(req, tunnel);
    const streaming = this.streamingRequestPaths.has(path);
    const declared = Number(req.headers["content-length"] ?? 0);
    let held = 0;
    let reserved = 0;
    if (Number.isSafeInteger(declared) && declared > 0) {
      const refusal = chargeBudget(budget, declared);
      if (refusal !== undefined) {
        this.refuse(req, res, refusal, new ConnectError(`request of ${declared} bytes refused: ${refusalText(refusal)}`, Code.ResourceExhausted));
        return undefined;
      }
      held = reserved = declared;
    }
    let received = 0;
    const idleMs = this.options.limits.bodyIdleTimeoutMs;
    const timer = streaming ? undefined : setTimeout(() => this.cut(req, "body_idle"), idleMs);
    timer?.unref();
    const push = req.push;
    req.push = (chunk: Buffer | null, encoding?: BufferEncoding): boolean => {
      if (chunk === null) {
        clearTimeout(timer);
        return push.call(req, chunk, encoding);
      }
      received += chunk.length;
      const extra = Math.max(0, received - reserved) - Math.max(0, held - reserved);
      if (extra > 0) {
        const refusal = chargeBudget(budget, extra);
        if (refusal !== undefined) {
          this.cut(req, refusal);
          return false;
        }
        held += extra;
      }
      timer?.refresh();
      return push.call(req, chunk, encoding);
    };
    if (streaming) {
      // A stream's messages are handled one by one: what the handler read no longer waits here.
      const read = req.read;
      req.read = (size?: number): unknown => {
        const chunk: unknown = read.call(req, size);
        if (Buffer.isBuffer(chunk) && held > 0) {
          const n = Math.min(chunk.length, held);
          budget.release(n);
          held -= n;
          reserved = Math.max(0, reserved - n);
          received -= n;
        }
        return chunk;
      };
    }
    res.once("close", () => {
      clearTimeout(timer);
      budget.release(held);
      held = 0;
    });
    return true;
  }

  private connectionBudget(req: GateRequest, tunnel: AgentIdentity | undefined): ByteBudget<BudgetLevel> {
    const key: object = req.httpVersionMajor === 2 ? (req as Http2ServerRequest).stream.session ?? req : req.socket;
    return this.options.budgets.forConnection(key, tunnel);
  }

  /** Answers a request whose body was not read with `err`, and closes its connection (HTTP/1.1) or stream (HTTP/2). */
  private refuse(req: GateRequest, res: GateResponse, reason: RequestRefusal | undefined, err: ConnectError): void {
    if (reason !== undefined) this.options.metrics.requestsRefused.inc({ reason });
    writeConnectError(req, res, err);
  }

  /** Ends a request whose body is coming in: an HTTP/2 stream is reset, an HTTP/1.1 connection closed. */
  private cut(req: GateRequest, reason: RequestRefusal): void {
    this.options.metrics.requestsRefused.inc({ reason });
    if (req.httpVersionMajor === 2) (req as Http2ServerRequest).stream.close(http2Constants.NGHTTP2_ENHANCE_YOUR_CALM);
    else req.socket.destroy();
  }
}

export function refusalText(refusal: RequestRefusal): string {
  switch (refusal) {
    case "connection_bytes":
      return "too many request bytes in flight on this connection";
    case "agent_bytes":
      return "too many request bytes in flight for this agent";
    default:
      return "the server has too many request bytes in flight";
  }
}

/** True once nothing can be answered: the response ended, or the caller closed the connection or reset the stream. */
function isGone(req: GateRequest, res: GateResponse): boolean {
  if (res.writableEnded || req.destroyed) return true;
  return "stream" in res && (res.stream.destroyed || res.stream.closed);
}

/** The headers credentials and the API version are read from, as fetch Headers. */
function credentialHeaders(req: GateRequest): Headers {
  const h = new Headers();
  for (const name of ["cookie", SESSION_TOKEN_HEADER, "authorization", API_VERSION_HEADER]) {
    const value = req.headers[name];
    if (typeof value === "string") h.set(name, value);
    else if (Array.isArray(value) && value[0] !== undefined) h.set(name, value[0]);
  }
  return h;
}

/**
 * Writes a Connect error before the body was read, as each protocol expects it: gRPC gets a
 * trailers-only response, Connect and others an HTTP status with the Connect JSON error. The
 * connection is not kept: an HTTP/1.1 socket closes, an HTTP/2 stream is closed once answered.
 */
function writeConnectError(req: GateRequest, res: GateResponse, err: ConnectError): void {
  // The caller may have reset the stream while its credentials were being checked.
  if (res.headersSent || isGone(req, res)) return;
  const contentType = String(req.headers["content-type"] ?? "");
  if (contentType.startsWith("application/grpc")) {
    const headers = { "content-type": contentType, "grpc-status": String(err.code), "grpc-message": encodeURIComponent(err.rawMessage) };
    if ("stream" in res) {
      res.stream.respond({ ":status": 200, ...headers }, { endStream: true });
      res.stream.close(http2Constants.NGHTTP2_NO_ERROR);
    } else {
      (res as ServerResponse).writeHead(200, { ...headers, connection: "close" }).end();
    }
    return;
  }
  const json = JSON.stringify({ code: codeToString(err.code), message: err.rawMessage });
  const headers = { "content-type": "application/json", "content-length": String(Buffer.byteLength(json)) };
  if ("stream" in res) {
    res.stream.respond({ ":status": codeToHttpStatus(err.code), ...headers });
    res.stream.end(json, () => res.stream.close(http2Constants.NGHTTP2_NO_ERROR));
  } else {
    (res as ServerResponse).writeHead(codeToHttpStatus(err.code), { ...headers, connection: "close" }).end(json);
  }
}
