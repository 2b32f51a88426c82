import { WebSocket } from "ws";
import { AGENT_RPC_PATH, SESSION_TOKEN_HEADER } from "../protocol/agent-rpc.js";
import { TUNNEL_MAX_MESSAGE_BYTES, TUNNEL_MAX_STREAM_WINDOW } from "../tunnel/tunnel-limits.js";
import { webSocketDuplex } from "../tunnel/websocket-duplex.js";
import { Session } from "../yamux/index.js";

/** The longest Retry-After honoured: a server asking for more is waited on this long. */
export const MAX_RETRY_AFTER_MS = 5 * 60_000;

/** A dial the server refused with an HTTP status; 401 and 403 are final, others may be retried. */
export class DialRefusedError extends Error {
  override name = "DialRefusedError";
  constructor(
    readonly status: number,
    readonly body: { message?: string; detail?: string } | undefined,
    /** The refusal's Retry-After (an overloaded server's 503), in milliseconds; undefined when it sent none. */
    readonly retryAfterMs?: number,
  ) {
    super(`agent endpoint refused the connection: ${status}${body?.message ? ` ${body.message}` : ""}${body?.detail ? ` (${body.detail})` : ""}`);
  }

  /** A refusal that retrying cannot fix: a bad token or an outdated build. */
  get final(): boolean {
    return this.status === 401 || this.status === 403;
  }
}

export interface DialOptions {
  url: URL;
  token: string;
  version: string;
  /** yamux keepalive: ping the server this often, and give up on it when a ping goes unanswered. */
  keepaliveIntervalMs: number;
  signal?: AbortSignal;
}

/** One dialled tunnel: the WebSocket and the yamux client session on it. */
export interface Tunnel {
  ws: WebSocket;
  session: Session;
}

/** Dials the agent endpoint and starts a yamux client session over the WebSocket. */
export function dialTunnel(options: DialOptions): Promise<Tunnel> {
  const url = new URL(options.url);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  if (url.pathname === "/" || url.pathname === "") url.pathname = AGENT_RPC_PATH;
  url.searchParams.set("version", options.version);
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      headers: { [SESSION_TOKEN_HEADER]: options.token },
      perMessageDeflate: false,
      maxPayload: TUNNEL_MAX_MESSAGE_BYTES,
    });
    const onAbort = () => ws.terminate();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    const settle = () => options.signal?.removeEventListener("abort", onAbort);
    ws.once("unexpected-response", (_req, res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        settle();
        let body: DialRefusedError["body"];
        try {
          body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as DialRefusedError["body"];
        } catch {
          body = undefined;
        }
        reject(new DialRefusedError(res.statusCode ?? 0, body, parseRetryAfter(res.headers["retry-after"])));
        ws.terminate();
      });
    });
    ws.once("error", (err) => {
      settle();
      reject(err);
    });
    // The session must exist before the first message can arrive: create it in 'open' itself.
    ws.once("open", () => {
      settle();
      const session = new Session(webSocketDuplex(ws), {
        role: "client",
        keepaliveIntervalMs: options.keepaliveIntervalMs,
        maxWindow: TUNNEL_MAX_STREAM_WINDOW,
        maxMessageBytes: TUNNEL_MAX_MESSAGE_BYTES,
      });
      resolve({ ws, session });
    });
  });
}

/** Retry-After as delay-seconds or an HTTP-date, in milliseconds (capped); undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  const ms = /^\d+$/.test(text) ? Number(text) * 1000 : Date.parse(text) - now;
  if (!Number.isFinite(ms)) return undefined;
  return Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS);
}
