import { HEADER_SIZE, INITIAL_STREAM_WINDOW, MAX_UINT32 } from "./frame.js";

/** Options of a `Session`. Durations are in milliseconds. */
export interface SessionOptions {
  /** "server" accepts the client's odd-numbered streams; "client" opens them. */
  role: "client" | "server";
  /** Streams open at once (both directions); SYNs beyond it are refused with RST. Default 1024. */
  maxStreams?: number;
  /** Receive window per stream at open; at least the spec's 256 KiB, which is the default. */
  initialWindow?: number;
  /**
   * The receive window doubles up to this while a reader keeps up with a window-limited sender.
   * It bounds memory a stream can buffer: maxStreams × maxWindow per session. Default 1 MiB.
   */
  maxWindow?: number;
  /**
   * Bytes all streams together may have in flight toward us: granted receive windows plus data
   * received and not yet read. A stream's window only grows, and its reader's credit only goes
   * out, within it; a SYN that would need more than is left is refused with RST. Bounds the
   * session's receive memory whatever the stream count. Default: no bound (maxStreams × maxWindow).
   */
  maxBufferedBytes?: number;
  /** Send a ping this often; 0 turns keepalive off. Default 0 (the server's tracker pings). */
  keepaliveIntervalMs?: number;
  /** Close the session when a keepalive ping is not answered in this time. Default 30 s. */
  keepaliveTimeoutMs?: number;
  /** close() lets open streams finish for this long, then destroys them. Default 5 s. */
  closeTimeoutMs?: number;
  /** Outgoing bytes queued before stream writes wait (write backpressure). Default 1 MiB. */
  writeHighWaterMark?: number;
  /**
   * Largest write to the transport, for one that sends each write as one message to a peer with a
   * read limit (a WebSocket): frames are packed into writes of whole frames up to this size, and
   * streams cut their data into Data frames that fit, so no write ever exceeds it. At least
   * {@link MIN_MAX_MESSAGE_BYTES}. Default: no limit.
   */
  maxMessageBytes?: number;
}

/** Smallest `maxMessageBytes`: a header and one byte of data must fit in a write. */
export const MIN_MAX_MESSAGE_BYTES = HEADER_SIZE + 1;

const DEFAULT_MAX_STREAMS = 1024;
/** Four doublings of the spec window: ~4× the throughput on high-latency links, bounded memory. */
const DEFAULT_MAX_WINDOW = 1024 * 1024;
const DEFAULT_KEEPALIVE_TIMEOUT_MS = 30_000;
const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;
const DEFAULT_WRITE_HIGH_WATER_MARK = 1024 * 1024;

/** @internal Every option with its default, checked: what a session runs with. */
export interface SessionConfig {
  isClient: boolean;
  maxStreams: number;
  initialWindow: number;
  maxWindow: number;
  /** Infinity: no bound. */
  maxBufferedBytes: number;
  keepaliveIntervalMs: number;
  keepaliveTimeoutMs: number;
  closeTimeoutMs: number;
  writeHighWaterMark: number;
  /** Undefined: no limit. */
  maxMessageBytes: number | undefined;
  /** The largest Data frame payload streams send: what fits in `maxMessageBytes`. */
  maxFramePayload: number;
}

/**
 * @internal Fills in the defaults and checks the options once, as hashicorp/yamux's
 * `VerifyConfig` does: windows are clamped to what the spec allows, a message limit too small to
 * carry data is an error.
 */
export function sessionConfig(options: SessionOptions): SessionConfig {
  const initialWindow = Math.max(options.initialWindow ?? INITIAL_STREAM_WINDOW, INITIAL_STREAM_WINDOW);
  const maxMessageBytes = options.maxMessageBytes;
  if (maxMessageBytes !== undefined && !(Number.isInteger(maxMessageBytes) && maxMessageBytes >= MIN_MAX_MESSAGE_BYTES)) {
    throw new RangeError(`yamux: maxMessageBytes must be an integer of at least ${MIN_MAX_MESSAGE_BYTES}`);
  }
  return {
    isClient: options.role === "client",
    maxStreams: options.maxStreams ?? DEFAULT_MAX_STREAMS,
    initialWindow,
    maxWindow: Math.min(Math.max(options.maxWindow ?? DEFAULT_MAX_WINDOW, initialWindow), MAX_UINT32),
    maxBufferedBytes: Math.max(options.maxBufferedBytes ?? Infinity, initialWindow),
    keepaliveIntervalMs: options.keepaliveIntervalMs ?? 0,
    keepaliveTimeoutMs: options.keepaliveTimeoutMs ?? DEFAULT_KEEPALIVE_TIMEOUT_MS,
    closeTimeoutMs: options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS,
    writeHighWaterMark: options.writeHighWaterMark ?? DEFAULT_WRITE_HIGH_WATER_MARK,
    maxMessageBytes,
    maxFramePayload: maxMessageBytes === undefined ? MAX_UINT32 : maxMessageBytes - HEADER_SIZE,
  };
}
