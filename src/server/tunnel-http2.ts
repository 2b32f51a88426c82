import { EventEmitter } from "node:events";
import type { IncomingHttpHeaders } from "node:http";
import type { Duplex } from "node:stream";
import { Code, ConnectError, createContextValues, type ContextValues } from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { agentIdentityKey, type AgentIdentity } from "../auth/agent-identity.js";
import { ErrorCode } from "../http2/frames.js";
import type { HeaderList } from "../http2/hpack-decoder.js";
import { ServerConnection, type ServerStream } from "../http2/server-connection.js";
import type { Logger } from "../log.js";
import type { LeanStream, LeanUnary } from "./lean-unary.js";

/** What an agent tunnel's own HTTP/2 connections serve with. */
export interface TunnelHttp2Options {
  /** The lean unary path, or undefined with `--connect-unary`. */
  lean: LeanUnary | undefined;
  /** connect's handlers by request path, for every call the lean path leaves. */
  handlers: ReadonlyMap<string, UniversalHandler>;
  /** SETTINGS_MAX_CONCURRENT_STREAMS of each connection. */
  maxConcurrentStreams: number;
  /** Request bytes one agent's calls may hold at once, all its connections together; past it a call is reset. */
  maxRequestBytesPerAgent: number;
  /** Told about a call reset for the agent's byte budget. */
  onBudgetExceeded(): void;
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
  /** Request bytes held per agent: what its calls received and have not yet used up. */
  private readonly heldByAgent = new Map<string, number>();

  constructor(private readonly options: TunnelHttp2Options) {}

  /** Serves one HTTP/2 connection (a yamux stream of the tunnel) of `identity`. */
  serve(transport: Duplex, identity: AgentIdentity): void {
    const connection = new ServerConnection(transport, {
      maxConcurrentStreams: this.options.maxConcurrentStreams,
      streamWindow: STREAM_WINDOW,
      onStream: (stream) => this.onStream(stream, identity),
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

  private onStream(stream: ServerStream, identity: AgentIdentity): void {
    const budget = this.budgetOf(identity.agentId, stream);
    const headers = headerObject(stream.headers);
    const lean = this.options.lean;
    if (lean !== undefined) {
      const adapter = new LeanStreamAdapter(stream, budget);
      if (lean.serveTunnelCall(adapter, headers, identity)) return;
      adapter.detach();
    }
    const path = String(headers[":path"] ?? "").split("?", 2)[0]!;
    const handler = this.options.handlers.get(path);
    if (handler === undefined) {
      answerUnknownRoute(stream, headers, path);
      return;
    }
    void this.universal(stream, headers, handler, this.valuesOf(identity), budget);
  }

  private async universal(stream: ServerStream, headers: IncomingHttpHeaders, handler: UniversalHandler, values: ContextValues, budget: Budget): Promise<void> {
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

  /** One call's share of its agent's request byte budget. */
  private budgetOf(agentId: string, stream: ServerStream): Budget {
    const held = this.heldByAgent;
    const max = this.options.maxRequestBytesPerAgent;
    let mine = 0;
    return {
      take: (bytes) => {
        const total = (held.get(agentId) ?? 0) + bytes;
        if (total > max) {
          this.options.onBudgetExceeded();
          stream.reset(ErrorCode.EnhanceYourCalm);
          return false;
        }
        held.set(agentId, total);
        mine += bytes;
        return true;
      },
      give: (bytes) => {
        const n = Math.min(bytes, mine);
        mine -= n;
        const left = (held.get(agentId) ?? 0) - n;
        if (left > 0) held.set(agentId, left);
        else held.delete(agentId);
      },
      release() {
        this.give(mine);
      },
    };
  }
}

interface Budget {
  /** Counts `bytes` received; false (and the stream reset) when the agent's budget would be exceeded. */
  take(bytes: number): boolean;
  /** Counts `bytes` used up. */
  give(bytes: number): void;
  /** The call is over: everything it held is given back. */
  release(): void;
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
    private readonly budget: Budget,
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
function requestBody(stream: ServerStream, controller: AbortController, budget: Budget): AsyncIterable<Uint8Array> {
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
 * An unknown path, as on node:http2: gRPC clients get Unimplemented in a trailers-only response,
 * everyone else a 404 with Connect's JSON error.
 */
function answerUnknownRoute(stream: ServerStream, headers: IncomingHttpHeaders, path: string): void {
  const contentType = String(headers["content-type"] ?? "");
  const message = `unknown method ${path}`;
  stream.onData = (chunk) => stream.consumed(chunk.length);
  if (contentType.startsWith("application/grpc")) {
    stream.respond([[":status", "200"], ["content-type", contentType], ["grpc-status", String(Code.Unimplemented)], ["grpc-message", encodeURIComponent(message)]], true);
    return;
  }
  stream.respond([[":status", "404"], ["content-type", "application/json"]]);
  stream.write(Buffer.from(JSON.stringify({ code: "unimplemented", message })));
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
