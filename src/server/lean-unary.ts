import type { Http2Server, Http2Session, IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import { constants as http2Constants } from "node:http2";
import { Code, ConnectError, createContextValues, type ContextValues } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { agentIdentityKey, type AgentIdentity } from "../auth/agent-identity.js";
import type { HeadersInit, LazyHandlerContext, RpcCallInit } from "../rpc/handler-context.js";
import { MAX_MESSAGE_BYTES, type RpcCore, type RpcMethod, type RpcObserver } from "../rpc/rpc-core.js";

/** Which unary wire format a stream speaks. */
const enum Wire {
  /** gRPC, binary: `application/grpc` or `application/grpc+proto`, no compression. */
  Grpc,
  /** Connect unary, binary: `application/proto`, no compression. */
  Connect,
}

/** What the lean unary path needs from the server. */
export interface LeanUnaryOptions {
  /** The Agent and Tailnet implementations, as connect's router serves them. */
  core: RpcCore;
  /** The agent a tunnel's HTTP/2 session belongs to; undefined for a plain-port session. */
  tunnelIdentity(session: Http2Session): AgentIdentity | undefined;
  /** True for a session whose calls the lean path leaves to connect-node (a client tunnel's). */
  passOver?(session: Http2Session): boolean;
  /** Admits a plain-port caller from its request headers; rejects with a ConnectError. */
  admit(headers: IncomingHttpHeaders): Promise<AgentIdentity>;
  /** Told about calls refused before they reached the core (admission), as the core tells it the rest. */
  observer?: RpcObserver;
  /**
   * Told about a plain-port call refused for its credentials, which (as on the connect-node
   * path's request gate) counts as a refused request, not as an RPC.
   */
  onUnauthenticated?(): void;
  /** Largest request message. Default 4 MiB. */
  readMaxBytes?: number;
}

/**
 * What a lean call needs of its HTTP/2 stream: node's ServerHttp2Stream has it, and so does the
 * adapter over agentgate's own HTTP/2 connection (src/server/tunnel-http2.ts).
 */
export interface LeanStream {
  readonly closed: boolean;
  readonly destroyed: boolean;
  readonly readableEnded: boolean;
  readonly headersSent: boolean;
  on(event: "data", listener: (chunk: Buffer) => void): unknown;
  on(event: "error", listener: (err: Error) => void): unknown;
  once(event: "end" | "close" | "wantTrailers", listener: () => void): unknown;
  off(event: "data", listener: (chunk: Buffer) => void): unknown;
  off(event: "end", listener: () => void): unknown;
  respond(headers: Record<string, string>, options?: { waitForTrailers?: boolean; endStream?: boolean }): void;
  end(data?: Uint8Array): unknown;
  sendTrailers(headers: Record<string, string>): void;
  close(code?: number): void;
}

/** The gRPC message envelope: a flags byte and a 32-bit big-endian length. */
const ENVELOPE_BYTES = 5;
const COMPRESSED_FLAG = 0b1;
const GRPC_CONTENT_TYPE = "application/grpc+proto";
const CONNECT_CONTENT_TYPE = "application/proto";
const ignore = (): void => undefined;

/**
 * Unary RPCs in binary gRPC and Connect, served straight from the HTTP/2 server's 'stream'
 * event through the RPC core: read the body, decode, call, encode, respond. No Headers, no
 * AbortController, no async iterables per call; the handler context builds those only when a
 * handler reads them. It takes a stream only when it can serve it the way connect-node would:
 * POST, a binary unary content type without compression, a path of a unary method of the
 * core. Everything else (streaming, JSON, compression, gRPC-Web, unknown paths) is left to
 * connect-node. Responses are never compressed, which every client accepts.
 */
export class LeanUnary {
  private readonly core: RpcCore;
  private readonly readMaxBytes: number;
  /** A tunnel's calls share its context values: its identity is fixed for its lifetime. */
  private readonly valuesByIdentity = new WeakMap<AgentIdentity, ContextValues>();

  constructor(private readonly options: LeanUnaryOptions) {
    this.core = options.core;
    this.readMaxBytes = options.readMaxBytes ?? MAX_MESSAGE_BYTES;
  }

  /**
   * Makes `server` offer every new stream to this path first; the streams it declines reach
   * the server's own 'stream' listeners (the request/response compatibility layer that
   * connect-node serves on). Node emits a server 'stream' for each stream of its sessions and
   * offers no other hook ahead of that layer.
   */
  install(server: Http2Server): void {
    const emit = server.emit;
    const lean = this;
    server.emit = function (this: Http2Server, event: string | symbol, ...args: unknown[]): boolean {
      if (event === "stream" && lean.serve(args[0] as ServerHttp2Stream, args[1] as IncomingHttpHeaders)) return true;
      return emit.call(this, event, ...args);
    } as Http2Server["emit"];
  }

  /** Serves the stream and returns true, or returns false and leaves it alone. */
  serve(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): boolean {
    const wire = wireOf(headers);
    if (wire === undefined) return false;
    const method = this.core.method(headers[":path"] ?? "");
    if (method === undefined || method.desc.methodKind !== "unary") return false;
    const { session } = stream;
    if (session !== undefined && this.options.passOver?.(session) === true) return false;
    const call = new LeanUnaryCall(this, stream, headers, method, wire);
    const identity = session === undefined ? undefined : this.options.tunnelIdentity(session);
    if (identity !== undefined) {
      call.run(this.valuesOf(identity));
    } else {
      // The token is checked from the headers before a byte of the body is read.
      const started = performance.now();
      this.options.admit(headers).then(
        (caller) => call.run(this.valuesFor(caller)),
        (err: unknown) => {
          const error = ConnectError.from(err);
          if (error.code === Code.Unauthenticated || error.code === Code.PermissionDenied) this.options.onUnauthenticated?.();
          else this.options.observer?.(method.desc.parent, method.desc, error.code, (performance.now() - started) / 1000);
          call.fail(error);
        },
      );
    }
    return true;
  }

  /**
   * Serves a call of an agent tunnel's own HTTP/2 connection as `identity`, and returns true; or
   * returns false and leaves the stream alone (not a binary unary call of the core).
   */
  serveTunnelCall(stream: LeanStream, headers: IncomingHttpHeaders, identity: AgentIdentity): boolean {
    const wire = wireOf(headers);
    if (wire === undefined) return false;
    const method = this.core.method(headers[":path"] ?? "");
    if (method === undefined || method.desc.methodKind !== "unary") return false;
    new LeanUnaryCall(this, stream, headers, method, wire).run(this.valuesOf(identity));
    return true;
  }

  /** @internal */
  get rpcCore(): RpcCore {
    return this.core;
  }

  /** @internal */
  get maxRequestBytes(): number {
    return this.readMaxBytes;
  }

  private valuesOf(identity: AgentIdentity): ContextValues {
    let values = this.valuesByIdentity.get(identity);
    if (values === undefined) {
      values = this.valuesFor(identity);
      this.valuesByIdentity.set(identity, values);
    }
    return values;
  }

  private valuesFor(identity: AgentIdentity): ContextValues {
    return createContextValues().set(agentIdentityKey, identity);
  }
}

/** The unary wire format of a request, or undefined when the lean path must not take it. */
function wireOf(headers: IncomingHttpHeaders): Wire | undefined {
  if (headers[":method"] !== "POST") return undefined;
  const type = headers["content-type"];
  if (type === "application/grpc" || type === GRPC_CONTENT_TYPE) {
    const encoding = headers["grpc-encoding"];
    return encoding === undefined || encoding === "identity" ? Wire.Grpc : undefined;
  }
  if (type === CONNECT_CONTENT_TYPE) {
    const encoding = headers["content-encoding"];
    if (encoding !== undefined && encoding !== "identity") return undefined;
    const version = headers["connect-protocol-version"];
    return version === undefined || version === "1" ? Wire.Connect : undefined;
  }
  return undefined;
}

/**
 * One unary call on one HTTP/2 stream; it is also the call's {@link RpcCallInit} and its
 * transport cancellation, so a call allocates this object, its body and its context.
 */
class LeanUnaryCall implements RpcCallInit {
  values!: ContextValues;
  readonly protocolName: string;
  readonly timeoutMs: number | undefined;
  private readonly timeoutError: ConnectError | undefined;
  private context: LazyHandlerContext | undefined;
  private chunks: Buffer[] = [];
  private received = 0;
  private done = false;
  private cancelController: AbortController | undefined;

  constructor(
    private readonly lean: LeanUnary,
    private readonly stream: LeanStream,
    private readonly headers: IncomingHttpHeaders,
    private readonly method: RpcMethod,
    private readonly wire: Wire,
  ) {
    this.protocolName = wire === Wire.Grpc ? "grpc" : "connect";
    // Without an 'error' listener a stream reset by a broken session would throw.
    stream.on("error", ignore);
    const timeout = wire === Wire.Grpc ? parseGrpcTimeout(single(headers["grpc-timeout"])) : parseConnectTimeout(single(headers["connect-timeout-ms"]));
    this.timeoutMs = typeof timeout === "number" ? timeout : undefined;
    this.timeoutError = timeout instanceof ConnectError ? timeout : undefined;
  }

  /** Request headers, turned into `Headers` only if a handler reads them (pseudo-headers left out). */
  get requestHeader(): HeadersInit {
    // `new Headers()` takes any iterable of pairs; the DOM typings name only arrays and records.
    return requestHeaderPairs(this.headers) as unknown as HeadersInit;
  }

  /** The transport's cancellation: aborts when the stream closes before the call is answered. */
  get cancellation(): { readonly signal: AbortSignal } {
    return this;
  }

  get signal(): AbortSignal {
    if (this.cancelController === undefined) {
      const controller = (this.cancelController = new AbortController());
      if (this.stream.closed || this.stream.destroyed) controller.abort();
      else this.stream.once("close", () => controller.abort());
    }
    return this.cancelController.signal;
  }

  receiveContext(context: LazyHandlerContext): void {
    this.context = context;
  }

  /** Reads the request and serves it, as the caller with `values`. */
  run(values: ContextValues): void {
    this.values = values;
    if (this.timeoutError !== undefined) {
      this.fail(this.timeoutError);
      return;
    }
    const declared = this.wire === Wire.Connect ? contentLengthOf(this.headers) : undefined;
    if (declared !== undefined && declared > this.lean.maxRequestBytes) {
      this.fail(new ConnectError(`message size ${declared} is larger than configured readMaxBytes ${this.lean.maxRequestBytes}`, Code.ResourceExhausted));
      return;
    }
    // An empty body that ended while the caller was admitted has emitted 'end' already.
    if (this.stream.readableEnded) {
      this.onEnd();
      return;
    }
    this.stream.on("data", this.onData);
    this.stream.once("end", this.onEnd);
  }

  /** Answers with `error` and stops reading the request. */
  fail(error: ConnectError): void {
    this.stopReading();
    this.respondError(error);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.chunks.push(chunk);
    this.received += chunk.length;
    const tooBig = this.wire === Wire.Grpc ? this.checkEnvelope() : this.checkConnectBody();
    if (tooBig !== undefined) this.fail(tooBig);
  };

  private readonly onEnd = (): void => {
    if (this.done) return;
    let request: Uint8Array | undefined;
    try {
      request = this.wire === Wire.Grpc ? this.grpcMessage() : this.connectMessage();
    } catch (err) {
      this.fail(ConnectError.from(err));
      return;
    } finally {
      this.stopReading();
    }
    this.lean.rpcCore.unary(this.method, request, this).then(this.respondOk, this.respondFailure);
  };

  /** A gRPC body's first envelope, checked as soon as its five bytes are in. */
  private checkEnvelope(): ConnectError | undefined {
    if (this.received < ENVELOPE_BYTES) return undefined;
    const head = this.chunks[0]!.length >= ENVELOPE_BYTES ? this.chunks[0]! : Buffer.concat(this.chunks);
    if ((head[0]! & COMPRESSED_FLAG) !== 0) return new ConnectError("received compressed envelope, but do not know how to decompress", Code.Internal);
    const length = head.readUInt32BE(1);
    const max = this.lean.maxRequestBytes;
    if (length > max) return new ConnectError(`message size ${length} is larger than configured readMaxBytes ${max}`, Code.ResourceExhausted);
    // A second envelope fails a unary call: no need to read on.
    if (this.received >= 2 * ENVELOPE_BYTES + length) return extraMessage();
    return undefined;
  }

  private checkConnectBody(): ConnectError | undefined {
    const max = this.lean.maxRequestBytes;
    return this.received > max ? new ConnectError(`message size is larger than configured readMaxBytes ${max}`, Code.ResourceExhausted) : undefined;
  }

  private body(): Buffer {
    const { chunks } = this;
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.received);
  }

  /** The one message of a gRPC body; undefined when there is none. */
  private grpcMessage(): Uint8Array | undefined {
    if (this.received === 0) return undefined;
    const body = this.body();
    if (body.length < ENVELOPE_BYTES) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
    const end = ENVELOPE_BYTES + body.readUInt32BE(1);
    if (body.length < end) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
    if (body.length > end) {
      // A complete second envelope is an extra message; a partial one an incomplete envelope.
      const rest = body.length - end;
      if (rest < ENVELOPE_BYTES || rest < ENVELOPE_BYTES + body.readUInt32BE(end + 1)) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
      throw extraMessage();
    }
    return body.subarray(ENVELOPE_BYTES, end);
  }

  private connectMessage(): Uint8Array {
    const declared = contentLengthOf(this.headers);
    if (declared !== undefined && declared !== this.received) {
      throw new ConnectError(`protocol error: promised ${declared} bytes, received ${this.received}`, Code.InvalidArgument);
    }
    return this.received === 0 ? new Uint8Array(0) : this.body();
  }

  private stopReading(): void {
    if (this.done) return;
    this.done = true;
    this.stream.off("data", this.onData);
    this.stream.off("end", this.onEnd);
    this.chunks = [];
  }

  private get answerable(): boolean {
    return !this.stream.destroyed && !this.stream.closed && !this.stream.headersSent;
  }

  private readonly respondOk = (message: Uint8Array): void => {
    if (!this.answerable) return;
    const { stream } = this;
    if (this.wire === Wire.Grpc) {
      const frame = Buffer.allocUnsafe(ENVELOPE_BYTES + message.length);
      frame[0] = 0;
      frame.writeUInt32BE(message.length, 1);
      frame.set(message, ENVELOPE_BYTES);
      const header: Record<string, string> = { ":status": "200", "content-type": GRPC_CONTENT_TYPE };
      addHeaders(header, this.context?.responseHeaderIfSet);
      stream.respond(header, { waitForTrailers: true });
      stream.once("wantTrailers", this.sendGrpcTrailers);
      stream.end(frame);
    } else {
      const header: Record<string, string> = { ":status": "200", "content-type": CONNECT_CONTENT_TYPE };
      addHeaders(header, this.context?.responseHeaderIfSet);
      addHeaders(header, this.context?.responseTrailerIfSet, "trailer-");
      header["content-length"] = String(message.length);
      stream.respond(header);
      stream.end(message);
    }
  };

  private readonly sendGrpcTrailers = (): void => {
    const trailer: Record<string, string> = {};
    addHeaders(trailer, this.context?.responseTrailerIfSet);
    trailer["grpc-status"] = "0";
    this.stream.sendTrailers(trailer);
  };

  private readonly respondFailure = (err: unknown): void => this.respondError(ConnectError.from(err));

  private respondError(error: ConnectError): void {
    if (!this.answerable) return;
    const { stream } = this;
    const set = this.context?.responseHeaderIfSet;
    const trailerSet = this.context?.responseTrailerIfSet;
    if (this.wire === Wire.Grpc) {
      // Trailers-only: the status in the one HEADERS frame that ends the stream.
      const header: Record<string, string> = {};
      addHeaders(header, set);
      const trailer = new Headers(trailerSet);
      setTrailerStatus(trailer, error);
      addHeaders(header, trailer);
      header[":status"] = "200";
      header["content-type"] = GRPC_CONTENT_TYPE;
      stream.respond(header, { endStream: true });
    } else {
      const header: Record<string, string> = {};
      addHeaders(header, set);
      addHeaders(header, trailerSet, "trailer-");
      addHeaders(header, error.metadata);
      const body = errorToJsonBytes(error, {});
      header[":status"] = String(codeToHttpStatus(error.code));
      header["content-type"] = "application/json";
      header["content-length"] = String(body.length);
      stream.respond(header);
      stream.end(body);
    }
    // An answer before the whole request arrived: the rest is not wanted (RFC 9113 §8.1).
    if (!stream.readableEnded) stream.close(http2Constants.NGHTTP2_NO_ERROR);
  }
}

function extraMessage(): ConnectError {
  return new ConnectError("protocol error: received extra input message for unary method", Code.Unimplemented);
}

/** Copies `from` into a Node header object, names optionally prefixed; repeated names joined. */
function addHeaders(into: Record<string, string>, from: Headers | undefined, prefix = ""): void {
  from?.forEach((value, key) => {
    into[prefix + key] = value;
  });
}

function* requestHeaderPairs(headers: IncomingHttpHeaders): Generator<[string, string]> {
  for (const key in headers) {
    if (key.startsWith(":")) continue;
    const value = headers[key];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) yield [key, v];
    else yield [key, value];
  }
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function contentLengthOf(headers: IncomingHttpHeaders): number | undefined {
  const value = headers["content-length"];
  if (value === undefined) return undefined;
  const n = Number(value);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

const GRPC_TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 0.001, n: 0.000001 };

/** `grpc-timeout` in ms, undefined when absent, or the error connect-node answers for a bad one. */
function parseGrpcTimeout(value: string | undefined): number | ConnectError | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (match === null) return new ConnectError(`protocol error: invalid grpc timeout value: ${value}`, Code.InvalidArgument);
  return GRPC_TIMEOUT_UNIT_MS[match[2]!]! * parseInt(match[1]!, 10);
}

/** `connect-timeout-ms`, as {@link parseGrpcTimeout}. */
function parseConnectTimeout(value: string | undefined): number | ConnectError | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,10}$/.test(value)) return new ConnectError(`protocol error: invalid connect timeout value: ${value}`, Code.InvalidArgument);
  return parseInt(value, 10);
}
