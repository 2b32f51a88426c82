import { EventEmitter } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { Agent } from "../../gen/coder/agent/v2/agent_pb.js";
import { Tailnet } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { CURRENT_API_VERSION } from "../protocol/agent-rpc.js";
import { tunnelTransport } from "./tunnel-transport.js";
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from "../backoff.js";
import { dialTunnel, DialRefusedError, type Tunnel } from "./dial.js";

/** The API version this SDK speaks: the newest the server knows. */
export const SDK_API_VERSION = CURRENT_API_VERSION;
/** hashicorp/yamux's default keepalive period. */
const DEFAULT_KEEPALIVE_MS = 30_000;
/** Placeholder authority for HTTP/2 inside the tunnel: the tunnel itself says where it goes. */

export interface ConnectAgentOptions {
  /** The server's base URL, e.g. http://127.0.0.1:3000. */
  url: string | URL;
  /** The agent token. */
  token: string;
  /** API version to request; default {@link SDK_API_VERSION}. */
  version?: string;
  /** RPC protocol inside the tunnel; default "connect" (cheaper in connect-node than gRPC). */
  protocol?: "connect" | "grpc";
  /** Reconnect delays; default 100 ms → 10 s with full jitter. */
  backoff?: BackoffOptions;
  /** yamux keepalive period; default 30 s, 0 turns it off. */
  keepaliveIntervalMs?: number;
}

/** What "disconnected" says about the next dial. */
export interface RedialInfo {
  /** Dials failed or tunnels lost since the last tunnel came up, this one included. */
  attempt: number;
  /** The backoff before the next dial. */
  retryInMs: number;
  /** Set when the server refused with 503 and Retry-After: its delay, which `retryInMs` honours. */
  retryAfterMs?: number;
}

/**
 * Events: "connected" (a tunnel is up), "disconnected" (err, {@link RedialInfo}: a dial failed or
 * the tunnel dropped, and another dial follows), "fatal" (err: the server refused for good).
 */
export interface AgentConnection extends EventEmitter {
  /** Typed client of `coder.agent.v2.Agent`. */
  readonly agent: Client<typeof Agent>;
  /** Typed client of `coder.tailnet.v2.Tailnet`. */
  readonly tailnet: Client<typeof Tailnet>;
  /** True while a tunnel is up. */
  readonly connected: boolean;
  /** Resolves when a tunnel is up; rejects if the server refused for good or the connection was closed. */
  ready(signal?: AbortSignal): Promise<void>;
  /** Closes the tunnel and stops reconnecting. */
  close(): Promise<void>;
}

/**
 * Dials the agent endpoint and keeps a tunnel up: a WebSocket, a yamux client session on it,
 * and one yamux stream carrying one HTTP/2 connection for every RPC (more streams only when
 * HTTP/2 needs a new connection). When the tunnel drops it is dialled again with jittered
 * exponential backoff; calls made meanwhile wait for it. A 401 or 403 stops everything with
 * an error that says why.
 */
export function connectAgent(options: ConnectAgentOptions): AgentConnection {
  return new ReconnectingConnection(options);
}

class ReconnectingConnection extends EventEmitter implements AgentConnection {
  readonly agent: Client<typeof Agent>;
  readonly tailnet: Client<typeof Tailnet>;
  private current: { tunnel: Tunnel; transport: Transport } | undefined;
  private waiters: { resolve: () => void; reject: (err: Error) => void }[] = [];
  private fatal: Error | undefined;
  private readonly closing = new AbortController();
  private readonly loop: Promise<void>;

  constructor(private readonly options: ConnectAgentOptions) {
    super();
    // "error" is reported as "disconnected"/"fatal"; never let an EventEmitter throw it.
    this.on("error", () => undefined);
    const transport = this.transport();
    this.agent = createClient(Agent, transport);
    this.tailnet = createClient(Tailnet, transport);
    this.loop = this.run();
  }

  get connected(): boolean {
    return this.current !== undefined;
  }

  ready(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortedWaiting());
    if (this.current !== undefined) return Promise.resolve();
    if (this.fatal !== undefined) return Promise.reject(this.fatal);
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        reject: (err: Error) => {
          signal?.removeEventListener("abort", onAbort);
          reject(err);
        },
      };
      const onAbort = () => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(abortedWaiting());
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  async close(): Promise<void> {
    this.closing.abort();
    this.fail(new ConnectError("agent connection closed", Code.Canceled));
    const tunnel = this.current?.tunnel;
    if (tunnel) {
      tunnel.session.destroy();
      tunnel.ws.close(1000);
    }
    await this.loop;
  }

  private fail(err: Error): void {
    this.fatal ??= err;
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  private async run(): Promise<void> {
    const { options } = this;
    const signal = this.closing.signal;
    let attempt = 0;
    while (!signal.aborted) {
      let tunnel: Tunnel;
      try {
        tunnel = await dialTunnel({
          url: new URL(options.url),
          token: options.token,
          version: options.version ?? SDK_API_VERSION,
          keepaliveIntervalMs: options.keepaliveIntervalMs ?? DEFAULT_KEEPALIVE_MS,
          signal,
        });
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof DialRefusedError && err.final) {
          this.fail(err);
          this.emit("fatal", err);
          return;
        }
        await this.redial(err as Error, ++attempt);
        continue;
      }
      attempt = 0;
      const closed = new Promise<void>((resolve) => tunnel.session.once("close", resolve));
      // The server's close code and reason ("1001 build is outdated"), for the disconnect's error.
      let closedWith: string | undefined;
      tunnel.ws.once("close", (code: number, reason: Buffer) => {
        closedWith = `${code}${reason.length > 0 ? ` ${reason.toString()}` : ""}`;
      });
      this.current = { tunnel, transport: this.tunnelTransport(tunnel) };
      this.emit("connected");
      for (const w of this.waiters.splice(0)) w.resolve();
      await closed;
      this.current = undefined;
      tunnel.ws.terminate();
      if (signal.aborted) return;
      const why = tunnel.session.error?.message ?? "tunnel closed";
      await this.redial(new Error(closedWith === undefined ? why : `${why} (websocket ${closedWith})`, { cause: tunnel.session.error }), ++attempt);
    }
  }

  /**
   * Says why and when, then waits before dial number `attempt` + 1: an overloaded server's
   * Retry-After when it sent one, else the backoff.
   */
  private async redial(err: Error, attempt: number): Promise<void> {
    const retryAfterMs = err instanceof DialRefusedError ? err.retryAfterMs : undefined;
    const retryInMs = retryAfterMs === undefined ? backoffDelay(attempt - 1, this.options.backoff ?? DEFAULT_BACKOFF) : retryAfterDelay(retryAfterMs);
    this.emit("disconnected", err, { attempt, retryInMs, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) } satisfies RedialInfo);
    await sleep(retryInMs, undefined, { signal: this.closing.signal }).catch(() => undefined);
  }

  /** Connect or gRPC over HTTP/2 whose connections are yamux streams of this tunnel. */
  private tunnelTransport(tunnel: Tunnel): Transport {
    return tunnelTransport(tunnel, this.options.protocol ?? "connect");
  }

  /** A transport that waits for a tunnel, then hands the call to that tunnel's transport. */
  private transport(): Transport {
    const current = async (signal: AbortSignal | undefined): Promise<Transport> => {
      await this.ready(signal);
      return this.current!.transport;
    };
    const transport = {
      unary: async (...args: Parameters<Transport["unary"]>) => (await current(args[1])).unary(...args),
      stream: async (...args: Parameters<Transport["stream"]>) => (await current(args[1])).stream(...args),
    };
    return transport as Transport;
  }
}

/**
 * Retry-After with jitter: the delay asked for plus up to half of it again, so a fleet refused
 * together comes back spread over that span instead of at one instant.
 */
export function retryAfterDelay(retryAfterMs: number, random: () => number = Math.random): number {
  return Math.floor(retryAfterMs + random() * (retryAfterMs / 2));
}

/** What a call aborted before its tunnel was up answers. */
function abortedWaiting(): ConnectError {
  return new ConnectError("call aborted while waiting for the agent tunnel", Code.Canceled);
}
