import { Duplex } from "node:stream";
import type { RawData, WebSocket } from "ws";
import { CLEAN_CLOSE_CODES, CloseCode } from "./websocket-close.js";

/** Bytes read ahead of the reader before the socket is paused: one yamux window. */
const DEFAULT_READ_AHEAD_BYTES = 256 * 1024;

/**
 * Turns a WebSocket into a byte-stream Duplex: binary messages in, in order, with no meaning
 * to their boundaries; every write goes out as one binary message, never merged with another.
 *
 * Three things ws's own `createWebSocketStream` gets wrong for a tunnel are handled here:
 * the `message` listener is attached synchronously (a first message can arrive in the same
 * tick as the upgrade), a full read buffer pauses the socket (so a fast agent cannot grow
 * our memory), and the Duplex is destroyed as soon as the socket closes (instead of hanging
 * until a timeout, leaving every RPC on it in flight).
 */
export function webSocketDuplex(ws: WebSocket, options: { readableHighWaterMark?: number } = {}): Duplex {
  let paused = false;
  const duplex = new Duplex({
    readableHighWaterMark: options.readableHighWaterMark ?? DEFAULT_READ_AHEAD_BYTES,
    read() {
      if (paused) {
        paused = false;
        ws.resume();
      }
    },
    write(chunk: Buffer, _encoding, callback) {
      if (ws.readyState !== ws.OPEN) {
        callback(new Error("websocket is not open"));
        return;
      }
      ws.send(chunk, { binary: true }, (err) => callback(err ?? null));
    },
    writev(chunks, callback) {
      if (ws.readyState !== ws.OPEN) {
        callback(new Error("websocket is not open"));
        return;
      }
      // Each write stays its own message: a writer that sized its writes to the peer's read limit
      // (the yamux session does) must not see two of them merged past it.
      const last = chunks.length - 1;
      chunks.forEach((c, i) => ws.send(c.chunk as Buffer, { binary: true }, i === last ? (err) => callback(err ?? null) : undefined));
    },
    final(callback) {
      if (ws.readyState === ws.OPEN) ws.close(CloseCode.Normal);
      callback();
    },
    destroy(err, callback) {
      ws.off("message", onMessage);
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) {
        if (err) ws.terminate();
        else ws.close(CloseCode.Normal);
      }
      callback(err);
    },
  });

  const onMessage = (data: RawData, isBinary: boolean) => {
    if (!isBinary) {
      ws.close(CloseCode.UnsupportedData, "binary messages only");
      return;
    }
    const chunks = Array.isArray(data) ? data : [data instanceof ArrayBuffer ? Buffer.from(data) : data];
    let more = true;
    for (const chunk of chunks) more = duplex.push(chunk);
    if (!more && !paused) {
      paused = true;
      ws.pause();
    }
  };
  ws.on("message", onMessage);
  ws.once("close", (code: number, reason: Buffer) => {
    if (duplex.destroyed) return;
    // A clean close ends the byte stream; anything else is an error for whoever reads it.
    if (CLEAN_CLOSE_CODES.has(code)) {
      duplex.push(null);
      duplex.destroy();
    } else {
      duplex.destroy(closeError(`websocket closed: ${code}${reason.length ? ` ${reason.toString()}` : ""}`));
    }
  });
  ws.on("error", (err) => duplex.destroy(err));
  return duplex;
}

/**
 * The error of a close the peer or the network made. Its stack would show only the event loop,
 * and formatting one per tunnel (the stream reads it on destroy) was 5 % of a worker's time
 * while it closed 10,000 tunnels at shutdown.
 */
function closeError(message: string): Error {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new Error(message);
  } finally {
    Error.stackTraceLimit = limit;
  }
}
