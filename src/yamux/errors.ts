/** Error codes of the yamux package, one place for all of them. */
export const YamuxErrorCode = {
  /** The peer broke the protocol; the session sent GoAway(protocol error) or reset the stream. */
  Protocol: "ERR_YAMUX_PROTOCOL",
  /** The peer reset the stream (RST). */
  StreamReset: "ERR_YAMUX_STREAM_RESET",
  /** The peer answered our SYN with RST: stream limit reached or it is going away. */
  StreamRefused: "ERR_YAMUX_STREAM_REFUSED",
  /** The session is closed or its transport ended or failed. */
  SessionClosed: "ERR_YAMUX_SESSION_CLOSED",
  /** The peer sent GoAway: no new streams may be opened. */
  RemoteGoAway: "ERR_YAMUX_REMOTE_GOAWAY",
  /** The peer sent GoAway with an error code. */
  RemoteError: "ERR_YAMUX_REMOTE_ERROR",
  /** A keepalive ping was not answered in time. */
  KeepaliveTimeout: "ERR_YAMUX_KEEPALIVE_TIMEOUT",
  /** close() gave up waiting for open streams to finish. */
  CloseTimeout: "ERR_YAMUX_CLOSE_TIMEOUT",
  /** Too many streams are open locally, or stream ids are used up. */
  StreamsExhausted: "ERR_YAMUX_STREAMS_EXHAUSTED",
} as const;
/** A yamux error code. */
export type YamuxErrorCode = (typeof YamuxErrorCode)[keyof typeof YamuxErrorCode];

/** The one error type of the package: a code to branch on and a message for people. */
export class YamuxError extends Error {
  readonly code: YamuxErrorCode;

  constructor(code: YamuxErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "YamuxError";
    this.code = code;
  }
}
