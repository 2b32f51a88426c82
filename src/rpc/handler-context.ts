import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues, type HandlerContext } from "@connectrpc/connect";
import { LazyAbortController } from "../lazy-abort-controller.js";

/** What `new Headers()` takes. */
export type HeadersInit = ConstructorParameters<typeof Headers>[0];

/** What a protocol binding knows about one call, handed to the RPC core. */
export interface RpcCallInit {
  /** The handler's context values (the caller's identity); a connection may share one for its calls. */
  readonly values: ContextValues;
  /** The protocol's name as connect spells them ("connect", "grpc", "grpc-web"), or "drpc". */
  readonly protocolName: string;
  /**
   * The transport's cancellation (the client went away), read only when a handler reads
   * `signal`: a DRPC call or an HTTP/2 stream wrapper with a lazily built signal.
   */
  readonly cancellation?: { readonly signal: AbortSignal };
  /** Request headers (DRPC: the invoke metadata), turned into `Headers` when first read. */
  readonly requestHeader?: HeadersInit;
  /** The client's deadline in milliseconds from now, if it sent one. */
  readonly timeoutMs?: number;
  /** Default "POST". */
  readonly requestMethod?: string;
  /**
   * Given the call's context before the implementation runs, for a binding that sends the
   * response headers and trailers a handler sets (an HTTP/2 binding; DRPC has none).
   */
  receiveContext?(context: LazyHandlerContext): void;
}

/** Why a handler's signal aborts; preallocated, so aborting costs nothing per call. */
const CANCELED = new ConnectError("the client canceled the call", Code.Canceled);
const COMPLETED = new ConnectError("the call completed", Code.Canceled);
/** The reason a signal aborts and the call fails with when the client's deadline passes. */
export const DEADLINE_EXCEEDED = new ConnectError("the operation timed out", Code.DeadlineExceeded);

/**
 * Connect's `HandlerContext`, built lazily: the AbortController, the links to the transport's
 * and the server's shutdown signals, and the header objects exist only once a handler reads
 * them; most unary handlers read none. Its members are getters on the prototype, so spreading
 * the context (`{...ctx}`) does not copy them. The signal aborts when the client cancels, the
 * server shuts down, the deadline passes, or the call completes, as connect's does.
 * @internal Created by the RPC core.
 */
export class LazyHandlerContext implements HandlerContext {
  readonly service: DescService;
  readonly method: DescMethod;
  readonly values: ContextValues;
  readonly protocolName: string;
  readonly requestMethod: string;
  readonly url: string;
  private readonly init: RpcCallInit;
  private readonly shutdownSignal: AbortSignal | undefined;
  private readonly deadline: number | undefined;
  private readonly abort = new LazyAbortController();
  private unlink: (() => void) | undefined;
  private linked = false;
  private requestHeaders: Headers | undefined;
  private responseHeaders: Headers | undefined;
  private responseTrailers: Headers | undefined;

  constructor(method: DescMethod, path: string, init: RpcCallInit, shutdownSignal: AbortSignal | undefined) {
    this.service = method.parent;
    this.method = method;
    this.values = init.values;
    this.protocolName = init.protocolName;
    this.requestMethod = init.requestMethod ?? "POST";
    this.url = path;
    this.init = init;
    this.shutdownSignal = shutdownSignal;
    this.deadline = init.timeoutMs === undefined ? undefined : Date.now() + init.timeoutMs;
  }

  get signal(): AbortSignal {
    const signal = this.abort.signal;
    if (!this.linked) {
      this.linked = true;
      this.link();
    }
    return signal;
  }

  timeoutMs(): number | undefined {
    return this.deadline === undefined ? undefined : this.deadline - Date.now();
  }

  get requestHeader(): Headers {
    return (this.requestHeaders ??= new Headers(this.init.requestHeader));
  }

  get responseHeader(): Headers {
    return (this.responseHeaders ??= new Headers());
  }

  get responseTrailer(): Headers {
    return (this.responseTrailers ??= new Headers());
  }

  /** @internal The response headers a handler set; undefined when it never read them. */
  get responseHeaderIfSet(): Headers | undefined {
    return this.responseHeaders;
  }

  /** @internal The response trailers a handler set; undefined when it never read them. */
  get responseTrailerIfSet(): Headers | undefined {
    return this.responseTrailers;
  }

  /** @internal Aborts the signal (if anyone has it, or later gets it) with `reason`. */
  abortWith(reason: unknown): void {
    this.abort.abort(reason);
    this.unlink?.();
  }

  /** @internal The call is over: the signal aborts, its links are dropped. */
  finish(): void {
    this.abortWith(COMPLETED);
  }

  private link(): void {
    if (this.abort.aborted) return;
    const transport = this.init.cancellation?.signal;
    const shutdown = this.shutdownSignal;
    if (transport?.aborted || shutdown?.aborted) {
      this.abort.abort(transport?.aborted ? CANCELED : shutdown!.reason);
      return;
    }
    const onCancel = (): void => this.abortWith(CANCELED);
    const onShutdown = (): void => this.abortWith(shutdown!.reason);
    transport?.addEventListener("abort", onCancel);
    shutdown?.addEventListener("abort", onShutdown);
    this.unlink = () => {
      this.unlink = undefined;
      transport?.removeEventListener("abort", onCancel);
      shutdown?.removeEventListener("abort", onShutdown);
    };
  }
}
