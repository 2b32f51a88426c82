import type { WebSocket } from "ws";
import { truncateUtf8 } from "../truncate-utf8.js";

/** WebSocket close codes a tunnel uses (RFC 6455 §7.4.1). */
export const CloseCode = {
  Normal: 1000,
  /** Every eviction and the server's shutdown, as coderd closes agents. */
  GoingAway: 1001,
  /** The peer broke the yamux protocol. */
  ProtocolError: 1002,
  /** A text message: the tunnel carries bytes only. */
  UnsupportedData: 1003,
  /** A close frame without a code. */
  NoStatus: 1005,
  /** A message over the read limit. */
  MessageTooBig: 1009,
} as const;

/** Codes of a close that ends the byte stream cleanly; any other is an error for its reader. */
export const CLEAN_CLOSE_CODES: ReadonlySet<number> = new Set([CloseCode.Normal, CloseCode.GoingAway, CloseCode.NoStatus]);

/** A close frame's reason must fit in 123 bytes (125 of control payload less the code). */
const MAX_CLOSE_REASON_BYTES = 123;
/** After a close frame to a peer that stopped reading, how long before the socket is cut. */
const CLOSE_HANDSHAKE_GRACE_MS = 1_000;

/**
 * Starts the close handshake and cuts the socket if the peer doesn't finish it promptly: one
 * that stopped reading never would, and ws would hold it for 30 s. The reason is cut to fit.
 */
export function closeWebSocket(ws: WebSocket, code: number, reason: string): void {
  if (ws.readyState === ws.OPEN) ws.close(code, truncateUtf8(reason, MAX_CLOSE_REASON_BYTES));
  if (ws.readyState !== ws.CLOSED) setTimeout(() => ws.terminate(), CLOSE_HANDSHAKE_GRACE_MS).unref();
}
