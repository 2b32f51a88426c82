import { EventEmitter } from "node:events";
import type { IncomingHttpHeaders } from "node:http";
import type { Duplex } from "node:stream";
import { Code, ConnectError, createContextValues, type ContextValues } from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, codeToString } from "@connectrpc/connect/protocol-connect";
import { agentIdentityKey, type AgentIdentity } from "../auth/agent-identity.js";
import { ErrorCode } from "../http2/frames.js";
import type { HeaderList } from "../http2/hpack-decoder.js";
import { ServerConnection, type ServerStream } from "../http2/server-connection.js";
import type { Logger } from "../log.js";
import type { ByteBudget } from "./byte-budget.js";
import type { LeanStream, LeanUnary } from "./lean-unary.js";
import { chargeBudget, type BudgetLevel, type RequestBudgets } from "./request-budgets.js";
import { refusalText, type RequestRefusal } from "./request-gate.js";

/** What an agent tunnel's own HTTP/2 connections serve with. */
export interface TunnelHttp2Options {
  /** The lean unary path, or undefined with `--connect-unary`. */
  lean: LeanUnary | undefined;
  /** connect's handlers by request path, for every call the lean path leaves. */
  handlers: ReadonlyMap<string, UniversalHandler>;
  /** SETTINGS_MAX_CONCURRENT_STREAMS of each connection. */
  maxConcurrentStreams: number;
  /** Request bytes held, per connection, agent and process, shared with node's servers; past a limit a call is reset. */
  budgets: RequestBudgets;
  /** A request body (of a call whose request is not a stream) pausing longer than this is reset. */
  bodyIdleTimeoutMs: number;
  /** Told about a call reset for its bytes or its stalled body. */
  onRefused(reason: RequestRefusal): void;
  logger: Logger;
}

/** A stream's receive window: small, so that what a stream may hold is its window, not the connection's. */
const STREAM_WINDOW = 256 * 1024;

/**
 * Serves the HTTP/2 streams of agent tunnels on agentgate's own HTTP/2 connection
 * (src/http2) instead of node:http2 (`--tunnel-http2 agentgate`): binary unary calls on the
 * lean path, everything else through connect's handlers as universal requests. The agent's
 * identity is the tunnel's, as with node:http2.
 */
export class TunnelHttp2 {
  private readonly connections = new Set<ServerConnection>();
  private readonly valuesByIdentity = new WeakMap<AgentIdentity, ContextValues>();

  constructor(private readonly options: TunnelHttp2Options) {}

  /** Serves one HTTP/2 connection (a yamux stream of the tunnel) of `identity`. */
  serve(transport: Duplex, identity: AgentIdentity): void {
    const connection: ServerConnection = new ServerConnection(transport, {
      maxConcurrentStreams: this.options.maxConcurrentStreams,
      streamWindow: STREAM_WINDOW,
      onStream: (stream) => this.onStream(stream, identity, connection),
    });
    this.connections.add(connection);
    transport.once("close", () => this.connections.delete(connection));
    transport.on("error", () => undefined);
    // The sniffer paused the stream with its first bytes put back.
    transport.resume();
  }

  /** GOAWAY on every connection: calls in flight finish, new ones go elsewhere. */
  goAwayAll(): void {
    for (const connection of this.connections) connection.goAway();
  }

  private onStream(stream: ServerStream, identity: AgentIdentity, connection: ServerConnection): void {
    const headers = headerObject(stream.headers);
    const path = String(headers[":path"] ?? "").split("?", 2)[0]!;
    const handler = this.options.handlers.get(path);
    const kind = handler?.method.methodKind;
    // A streaming request may rightly pause for long (a Coordinate stream does): no idle timer.
    const idleMs = kind === "client_streaming" || kind === "bidi_streaming" ? undefined : this.options.bodyIdleTimeoutMs;
    const meter = new CallMeter(stream, this.options.budgets.forConnection(connection, identity), idleMs, this.options.onRefused);
    // A declared length is charged up front, as on node's servers: refused before a byte is read.
    const declared = Number(headers["content-length"] ?? 0);
    if (Number.isSafeInteger(declared) && declared > 0) {
      const refusal = meter.reserve(declared);
      if (refusal !== undefined) {
        answerError(stream, headers, Code.ResourceExhausted, `request of ${declared} bytes refused: ${refusalText(refusal)}`);
        stream.reset(ErrorCode.NoError);
        return;
      }
    }
    const lean = this.options.lean;
    if (lean !== undefined) {
      const adapter = new LeanStreamAdapter(stream, meter);
      if (lean.serveTunnelCall(adapter, headers, identity)) return;
      adapter.detach();
    }
    if (handler === undefined) {
      meter.release();
      answerError(stream, headers, Code.Unimplemented, `unknown method ${path}`);
      return;
    }
    void this.universal(stream, headers, handler, this.valuesOf(identity), meter);
  }

  private async universal(stream: ServerStream, headers: IncomingHttpHeaders, handler: UniversalHandler, values: ContextValues, budget: CallMeter): Promise<void> {
    const controller = new AbortController();
    const body = requestBody(stream, controller, budget);
    const header = new Headers();
    for (const [name, value] of stream.headers) if (!name.startsWith(":")) header.append(name, value);
    try {
      const res = await handler({
        httpVersion: "2.0",
        method: String(headers[":method"] ?? "GET"),
        url: `http://${headers[":authority"] ?? "localhost"}${headers[":path"] ?? "/"}`,
        header,
        body,
        signal: controller.signal,
        contextValues: values,
      });
      if (stream.closed) return;
      const response: HeaderList = [[":status", String(res.status)]];
      res.header?.forEach((value, name) => response.push([name, value]));
      stream.respond(response);
      if (res.body !== undefined) {
        for await (const chunk of res.body) {
          if (stream.closed) break;
          stream.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          await stream.whenDrained();
        }
      }
      const trailer: HeaderList = [];
      res.trailer?.forEach((value, name) => trailer.push([name, value]));
      stream.end(trailer.length > 0 ? trailer : undefined);
    } catch (err) {
      if (ConnectError.from(err).code !== Code.Aborted) this.options.logger.warn({ err, path: headers[":path"] }, "tunnel call failed");
      stream.reset(ErrorCode.InternalError);
    } finally {
      budget.release();
    }
  }

  private valuesOf(identity: AgentIdentity): ContextValues {
    let values = this.valuesByIdentity.get(identity);
    if (values === undefined) {
      values = createContextValues().set(agentIdentityKey, identity);
      this.valuesByIdentity.set(identity, values);
    }
    return values;
  }
}

/**
 * One call's request bytes, charged to its connection's budget (and so its agent's and the
 * process's) as they arrive and given back as they are used, and its body idle timer: armed once
 * the turn that brought the headers is over with the body still to come (a unary call's whole
 * request usually comes in one piece and never needs one), refreshed by every chunk.
 */
class CallMeter {
  /** Bytes charged to the budget now: a declared length up front, then what arrives past it. */
  private charged = 0;
  /** Bytes received and not yet used up. */
  private pending = 0;
  private timer: NodeJS.Timeout | undefined;
  private released = false;

  constructor(
    private readonly stream: ServerStream,
    private readonly budget: ByteBudget<BudgetLevel>,
    private readonly idleMs: number | undefined,
    private readonly onRefused: (reason: RequestRefusal) => void,
  ) {
    if (idleMs !== undefined) queueMicrotask(() => this.armIdle());
  }

  /** Charges a declared request length before any of it arrives; names the refusing level, or undefined. */
  reserve(bytes: number): RequestRefusal | undefined {
    const refusal = chargeBudget(this.budget, bytes);
    if (refusal !== undefined) {
      this.onRefused(refusal);
      this.release();
      return refusal;
    }
    this.charged += bytes;
    return undefined;
  }

  /** Counts `bytes` received; false (and the stream reset) when a budget would be exceeded. */
  take(bytes: number): boolean {
    this.pending += bytes;
    const extra = this.pending - this.charged;
    if (extra > 0) {
      const refusal = chargeBudget(this.budget, extra);
      if (refusal !== undefined) {
        this.refuse(refusal);
        return false;
      }
      this.charged += extra;
    }
    this.timer?.refresh();
    return true;
  }

  /** Counts `bytes` used up: they no longer count, nor does as much of a declared length. */
  give(bytes: number): void {
    const n = Math.min(bytes, this.pending);
    this.pending -= n;
    const back = Math.min(n, this.charged);
    this.charged -= back;
    this.budget.release(back);
  }

  /** The request body is complete: nothing to time any more. */
  bodyEnded(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The call is over: everything it held is given back. */
  release(): void {
    this.released = true;
    this.bodyEnded();
    this.budget.release(this.charged);
    this.charged = this.pending = 0;
  }

  private armIdle(): void {
    if (this.released || this.stream.requestDone) return;
    this.timer = setTimeout(() => this.refuse("body_idle"), this.idleMs);
    this.timer.unref();
  }

  private refuse(reason: RequestRefusal): void {
    if (this.released) return;
    this.onRefused(reason);
    this.stream.reset(ErrorCode.EnhanceYourCalm);
    this.release();
  }
}

/**
 * A {@link ServerStream} as the lean unary call sees node's ServerHttp2Stream: events for the
 * request body, `respond`/`end`/`sendTrailers` for the response. The body counts against the
 * agent's byte budget until the call ends.
 */
class LeanStreamAdapter extends EventEmitter implements LeanStream {
  closed = false;
  destroyed = false;
  readableEnded = false;
  headersSent = false;
  private trailersWanted = false;

  constructor(
    private readonly stream: ServerStream,
    private readonly budget: CallMeter,
  ) {
    super();
    stream.onData = (chunk) => {
      if (!budget.take(chunk.length)) return;
      // The call keeps the whole body until it ends; the budget, not the window, bounds it.
      stream.consumed(chunk.length);
      this.emit("data", chunk);
    };
    stream.onEnd = () => {
      this.readableEnded = true;
      budget.bodyEnded();
      this.emit("end");
    };
    stream.onReset = () => this.gone();
  }

  /** Leaves the stream to another server path. */
  detach(): void {
    this.stream.onData = this.stream.onEnd = this.stream.onReset = undefined;
  }

  respond(headers: Record<string, string>, options?: { waitForTrailers?: boolean; endStream?: boolean }): void {
    if (this.closed) return;
    this.headersSent = true;
    this.trailersWanted = options?.waitForTrailers === true;
    this.stream.respond(pairs(headers), options?.endStream === true);
    if (options?.endStream === true) this.gone();
  }

  end(data?: Uint8Array): this {
    if (this.closed) return this;
    if (data !== undefined && data.length > 0) this.stream.write(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    if (this.trailersWanted) this.emit("wantTrailers");
    else {
      this.stream.end();
      this.gone();
    }
    return this;
  }

  sendTrailers(headers: Record<string, string>): void {
    if (this.closed) return;
    this.stream.end(pairs(headers));
    this.gone();
  }

  close(code?: number): void {
    // After an early answer: the rest of the request is not wanted.
    if (!this.readableEnded) this.stream.reset(code ?? ErrorCode.NoError);
    this.gone();
  }

  private gone(): void {
    if (this.closed) return;
    this.closed = this.destroyed = true;
    this.budget.release();
    this.emit("close");
  }
}

/** A request body as connect's handlers read it: chunks as they come, credit returned as they are read. */
function requestBody(stream: ServerStream, controller: AbortController, budget: CallMeter): AsyncIterable<Uint8Array> {
  const chunks: Buffer[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  stream.onData = (chunk) => {
    if (!budget.take(chunk.length)) return;
    chunks.push(chunk);
    wake?.();
  };
  stream.onEnd = () => {
    ended = true;
    budget.bodyEnded();
    wake?.();
  };
  stream.onReset = () => {
    ended = true;
    controller.abort(new ConnectError("the stream was reset", Code.Canceled));
    wake?.();
  };
  return {
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const chunk = chunks.shift();
        if (chunk !== undefined) {
          budget.give(chunk.length);
          stream.consumed(chunk.length);
          yield chunk;
          continue;
        }
        if (controller.signal.aborted) throw controller.signal.reason;
        if (ended) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    },
  };
}

/**
 * An error answered before the body is read, as on node:http2: gRPC clients get a trailers-only
 * response, everyone else the code's HTTP status with Connect's JSON error (an unknown path: 404).
 */
function answerError(stream: ServerStream, headers: IncomingHttpHeaders, code: Code, message: string): void {
  const contentType = String(headers["content-type"] ?? "");
  stream.onData = (chunk) => stream.consumed(chunk.length);
  if (contentType.startsWith("application/grpc")) {
    stream.respond([[":status", "200"], ["content-type", contentType], ["grpc-status", String(code)], ["grpc-message", encodeURIComponent(message)]], true);
    return;
  }
  stream.respond([[":status", String(codeToHttpStatus(code))], ["content-type", "application/json"]]);
  stream.write(Buffer.from(JSON.stringify({ code: codeToString(code), message })));
  stream.end();
}

/** Request headers as node hands them to a 'stream' listener: repeated names as arrays. */
function headerObject(list: HeaderList): IncomingHttpHeaders {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of list) {
    const seen = headers[name];
    if (seen === undefined) headers[name] = value;
    else if (Array.isArray(seen)) seen.push(value);
    else headers[name] = [seen, value];
  }
  return headers as IncomingHttpHeaders;
}

function pairs(headers: Record<string, string>): HeaderList {
  const out: HeaderList = [];
  for (const name in headers) out.push([name.toLowerCase(), String(headers[name])]);
  return out;
}
