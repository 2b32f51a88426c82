import type { Server as Http1Server } from "node:http";
import type { Http2Server } from "node:http2";
import type { Duplex } from "node:stream";

/** The HTTP/2 client connection preface starts with these bytes (RFC 9113 §3.4); no HTTP/1.1 method does. */
const HTTP2_PREFACE_START = Buffer.from("PRI * HTTP/2.0");

/** The two servers a connection can be handed to. */
export interface HttpServers {
  http1: Http1Server;
  http2: Http2Server;
}

/** Gives the stream to the chosen server; by default its 'connection' event. */
export type HandOver = (server: Http1Server | Http2Server, stream: Duplex) => void;

const emitConnection: HandOver = (server, stream) => server.emit("connection", stream);

/**
 * Hands a byte stream (a TCP socket or a yamux stream) to the HTTP/2 server when it opens with
 * the prior-knowledge preface, and to the HTTP/1.1 server otherwise. Only the first bytes are
 * looked at, and they are put back before the chosen server reads them. A stream that sends
 * nothing within `sniffTimeoutMs` is destroyed, so idle openers cannot pile up.
 */
export function dispatchHttpConnection(stream: Duplex, servers: HttpServers, sniffTimeoutMs: number, handOver: HandOver = emitConnection): void {
  let seen: Buffer = Buffer.alloc(0);
  const timer = setTimeout(() => finish(new Error("no request within the sniff timeout")), sniffTimeoutMs);
  timer.unref();

  const onData = (chunk: Buffer) => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, HTTP2_PREFACE_START.length);
    const isHttp2Prefix = seen.subarray(0, n).equals(HTTP2_PREFACE_START.subarray(0, n));
    if (isHttp2Prefix && seen.length < HTTP2_PREFACE_START.length) return;
    finish(undefined, isHttp2Prefix ? servers.http2 : servers.http1);
  };
  const onEnd = () => finish();
  const onError = (err: Error) => finish(err);

  function finish(err?: Error, server?: Http1Server | Http2Server) {
    clearTimeout(timer);
    stream.off("data", onData);
    stream.off("end", onEnd);
    stream.off("error", onError);
    if (server === undefined) {
      stream.destroy(err);
      return;
    }
    // Paused, the bytes read so far wait in the stream's buffer for the chosen server: HTTP/2
    // reads them from there itself (socket.read() on the next tick); the HTTP/1.1 server reads
    // through 'data' events, which a paused stream only emits once resumed.
    stream.pause();
    stream.unshift(seen);
    handOver(server, stream);
    if (server === servers.http1) stream.resume();
  }

  stream.on("data", onData);
  stream.once("end", onEnd);
  stream.once("error", onError);
}
