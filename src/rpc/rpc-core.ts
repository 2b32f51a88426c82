import { create, fromBinary, isMessage, toBinary, type DescMessage, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { DEADLINE_EXCEEDED, LazyHandlerContext, type RpcCallInit } from "./handler-context.js";

/**
 * A service and its implementation, as connect's `router.service(service, impl)` takes them.
 * (`any`: a list holds different services; `rpcRegistration` checks each pair's types.)
 */
export type RpcRegistration = readonly [service: DescService, implementation: Partial<ServiceImpl<any>>];

/** One registration, with the implementation's type checked against the service. */
export function rpcRegistration<S extends DescService>(service: S, implementation: Partial<ServiceImpl<S>>): RpcRegistration {
  return [service, implementation];
}

/**
 * Told once per call that reached a method (unknown paths are not calls): `code` is undefined
 * for success, else the Connect code (= gRPC's number) it failed with.
 */
export type RpcObserver = (service: DescService, method: DescMethod, code: Code | undefined, durationSeconds: number) => void;

/** Options of the RPC core. */
export interface RpcCoreOptions {
  /** Sees every call's outcome: the server keeps one set of metrics for all protocols with it. */
  observer?: RpcObserver;
  /** Aborted at shutdown; handlers that read their signal see it abort. */
  shutdownSignal?: AbortSignal;
  /** Turns a handler's failure into the error answered; default `ConnectError.from`. */
  errorOf?: (err: unknown) => ConnectError;
  /** Largest request message accepted. Default 4 MiB. */
  readMaxBytes?: number;
  /** Largest response message sent. Default 4 MiB. */
  writeMaxBytes?: number;
}

/** One message either way at most, by default: what Coder's agents accept (a 4 MiB read limit). */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** A method the core serves: resolved once per path. */
export interface RpcMethod {
  /** `/package.Service/Method`. */
  readonly path: string;
  readonly desc: DescMethod;
  /** Undefined when the service leaves the method out: calls fail with Unimplemented. */
  readonly impl: ((input: unknown, context: LazyHandlerContext) => unknown) | undefined;
}

/** How a streaming binding moves messages: protobuf binary either way. */
export interface RpcMessageStream {
  /** The request messages as they arrive; ends when the client sends no more. */
  readonly requests: AsyncIterable<Uint8Array>;
  /** Sends one response message; a returned promise means: wait for it before sending more. */
  send(message: Uint8Array): Promise<void> | undefined;
}

/** The error for a path no registered service has, as every binding answers it (code 12). */
export function unknownMethodError(path: string): ConnectError {
  return new ConnectError(`unknown method ${path}`, Code.Unimplemented);
}

/**
 * Serves the registered Connect service implementations to any protocol binding (DRPC, a lean
 * HTTP/2 path) without connect's per-call machinery: a path is looked up once in a map, the
 * request decoded with protobuf-es, the implementation called with a lazily built handler
 * context, the result encoded. Unary, server-streaming, client-streaming and bidi methods work
 * as under connect's router; every failure comes out as a `ConnectError` (`ConnectError.from`),
 * and an unimplemented method fails with Unimplemented (12), as connect's router answers it.
 */
export class RpcCore {
  private readonly methods = new Map<string, RpcMethod>();
  private readonly observer: RpcObserver | undefined;
  private readonly shutdownSignal: AbortSignal | undefined;
  private readonly readMaxBytes: number;
  private readonly writeMaxBytes: number;
  private readonly errorOf: (err: unknown) => ConnectError;

  constructor(registrations: readonly RpcRegistration[], options: RpcCoreOptions = {}) {
    for (const [service, implementation] of registrations) {
      for (const desc of service.methods) {
        const path = `/${service.typeName}/${desc.name}`;
        const fn: unknown = implementation[desc.localName];
        const impl = typeof fn === "function" ? (fn.bind(implementation) as RpcMethod["impl"]) : undefined;
        this.methods.set(path, { path, desc, impl });
      }
    }
    this.observer = options.observer;
    this.shutdownSignal = options.shutdownSignal;
    this.errorOf = options.errorOf ?? ((err) => ConnectError.from(err));
    this.readMaxBytes = options.readMaxBytes ?? MAX_MESSAGE_BYTES;
    this.writeMaxBytes = options.writeMaxBytes ?? MAX_MESSAGE_BYTES;
  }

  /** The method at a gRPC path (`/coder.agent.v2.Agent/GetManifest`), or undefined. */
  method(path: string): RpcMethod | undefined {
    return this.methods.get(path);
  }

  /**
   * Serves a unary call from its request bytes (undefined: the client sent no message) and
   * resolves with the response bytes. Rejects with a `ConnectError`.
   */
  unary(method: RpcMethod, request: Uint8Array | undefined, init: RpcCallInit): Promise<Uint8Array> {
    if (method.desc.methodKind !== "unary") throw new Error(`${method.path} is not unary`);
    return this.observed(method, init, this.callUnary, request);
  }

  /**
   * Serves a call of any kind over a message stream: unary and server-streaming methods take the
   * first request message, client-streaming and bidi ones all of them. Resolves once the last
   * response is sent; rejects with a `ConnectError`.
   */
  stream(method: RpcMethod, io: RpcMessageStream, init: RpcCallInit): Promise<void> {
    return this.observed(method, init, this.callStream, io);
  }

  /** Runs `call` with a fresh context, under the deadline, normalising and observing its outcome. */
  private async observed<A, T>(
    method: RpcMethod,
    init: RpcCallInit,
    call: (this: RpcCore, method: RpcMethod, arg: A, context: LazyHandlerContext) => Promise<T>,
    arg: A,
  ): Promise<T> {
    const context = new LazyHandlerContext(method.desc, method.path, init, this.shutdownSignal);
    init.receiveContext?.(context);
    const started = performance.now();
    let code: Code | undefined;
    try {
      return await this.withDeadline(call.call(this, method, arg, context), context, init.timeoutMs);
    } catch (err) {
      const error = this.errorOf(err);
      code = error.code;
      throw error;
    } finally {
      context.finish();
      this.observer?.(method.desc.parent, method.desc, code, (performance.now() - started) / 1000);
    }
  }

  private async callUnary(method: RpcMethod, request: Uint8Array | undefined, context: LazyHandlerContext): Promise<Uint8Array> {
    const impl = implOf(method);
    if (request === undefined) throw missingInput(method);
    const output = await impl(this.decode(method.desc.input, request), context);
    return this.encode(method.desc.output, output);
  }

  private async callStream(method: RpcMethod, io: RpcMessageStream, context: LazyHandlerContext): Promise<void> {
    const impl = implOf(method);
    const { desc } = method;
    switch (desc.methodKind) {
      case "unary":
        await sendAll(io, [await this.callUnary(method, await firstOf(io.requests), context)]);
        return;
      case "server_streaming": {
        const request = await firstOf(io.requests);
        if (request === undefined) throw missingInput(method);
        const outputs = impl(this.decode(desc.input, request), context) as AsyncIterable<unknown>;
        await sendAll(io, this.encodeAll(desc.output, outputs));
        return;
      }
      case "client_streaming": {
        const output = await impl(this.decodeAll(desc.input, io.requests), context);
        await sendAll(io, [this.encode(desc.output, output)]);
        return;
      }
      case "bidi_streaming": {
        const outputs = impl(this.decodeAll(desc.input, io.requests), context) as AsyncIterable<unknown>;
        await sendAll(io, this.encodeAll(desc.output, outputs));
        return;
      }
    }
  }

  private withDeadline<T>(call: Promise<T>, context: LazyHandlerContext, timeoutMs: number | undefined): Promise<T> {
    if (timeoutMs === undefined) return call;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        context.abortWith(DEADLINE_EXCEEDED);
        reject(DEADLINE_EXCEEDED);
      }, Math.max(0, timeoutMs));
    });
    return Promise.race([call, deadline]).finally(() => clearTimeout(timer));
  }

  private decode(schema: DescMessage, bytes: Uint8Array): unknown {
    if (bytes.length > this.readMaxBytes) {
      throw new ConnectError(`message size ${bytes.length} is larger than configured readMaxBytes ${this.readMaxBytes}`, Code.ResourceExhausted);
    }
    try {
      return fromBinary(schema, bytes);
    } catch (err) {
      throw new ConnectError(`parse binary: ${err instanceof Error ? err.message : String(err)}`, Code.InvalidArgument);
    }
  }

  private encode(schema: DescMessage, output: unknown): Uint8Array {
    const message = isMessage(output, schema) ? output : create(schema, output as never);
    const bytes = toBinary(schema, message);
    if (bytes.length > this.writeMaxBytes) {
      throw new ConnectError(`message size ${bytes.length} is larger than configured writeMaxBytes ${this.writeMaxBytes}`, Code.ResourceExhausted);
    }
    return bytes;
  }

  private async *decodeAll(schema: DescMessage, requests: AsyncIterable<Uint8Array>): AsyncGenerator<unknown> {
    for await (const request of requests) yield this.decode(schema, request);
  }

  private async *encodeAll(schema: DescMessage, outputs: AsyncIterable<unknown>): AsyncGenerator<Uint8Array> {
    for await (const output of outputs) yield this.encode(schema, output);
  }
}

function implOf(method: RpcMethod): NonNullable<RpcMethod["impl"]> {
  if (method.impl === undefined) {
    throw new ConnectError(`${method.desc.parent.typeName}.${method.desc.name} is not implemented`, Code.Unimplemented);
  }
  return method.impl;
}

function missingInput(method: RpcMethod): ConnectError {
  const kind = method.desc.methodKind === "unary" ? "unary" : "server-streaming";
  return new ConnectError(`protocol error: missing input message for ${kind} method`, Code.Unimplemented);
}

async function firstOf(requests: AsyncIterable<Uint8Array>): Promise<Uint8Array | undefined> {
  const first = await requests[Symbol.asyncIterator]().next();
  return first.done === true ? undefined : first.value;
}

async function sendAll(io: RpcMessageStream, messages: Iterable<Uint8Array> | AsyncIterable<Uint8Array>): Promise<void> {
  for await (const message of messages) {
    const wait = io.send(message);
    if (wait !== undefined) await wait;
  }
}
