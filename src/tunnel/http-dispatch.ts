import type { Server as Http1Server } from "node:http";
import type { Http2Server } from "node:http2";
import type { Duplex } from "node:stream";
import { classifyHttp, type HttpProtocol } from "./stream-protocols.js";
import { sniffStream } from "./stream-sniffer.js";

/** The two servers a connection can be handed to. */
export interface HttpServers {
  http1: Http1Server;
  http2: Http2Server;
}

/**
 * Hands an HTTP connection to the server of its protocol, its first bytes put back. Node's
 * HTTP/2 server reads them from the paused stream's buffer itself (socket.read() on the next
 * tick); the HTTP/1.1 server reads through 'data' events, which a paused stream only emits once
 * resumed, so it is resumed after the hand-over.
 */
export function handOverHttp(stream: Duplex, servers: HttpServers, protocol: HttpProtocol, handOver: (server: Http1Server | Http2Server) => void): void {
  const server = protocol === "http2" ? servers.http2 : servers.http1;
  handOver(server);
  if (protocol === "http1") stream.resume();
}

/**
 * The plain port's connections: HTTP/2 when one opens with the prior-knowledge preface, HTTP/1.1
 * otherwise, each emitted as its server's 'connection'. One that sends nothing within
 * `sniffTimeoutMs` is destroyed, so idle openers cannot pile up.
 */
export function dispatchHttpConnection(stream: Duplex, servers: HttpServers, sniffTimeoutMs: number): void {
  sniffStream(stream, classifyHttp, { timeoutMs: sniffTimeoutMs }, (protocol) =>
    handOverHttp(stream, servers, protocol, (server) => server.emit("connection", stream)),
  );
}
