import type { Server as Http1Server } from "node:http";
import type { Http2Server } from "node:http2";
import type { Duplex } from "node:stream";
import { handOverHttp, type HttpServers } from "./http-dispatch.js";
import { classifyTunnelStream } from "./stream-protocols.js";
import { sniffStream } from "./stream-sniffer.js";

/** Who takes a tunnel's streams once their protocol is known: the caller binds its identity in. */
export interface TunnelStreamHandlers {
  servers: HttpServers;
  /** Hands an HTTP stream to `server` (as the tunnel's connection). */
  http(server: Http1Server | Http2Server, stream: Duplex): void;
  /** Serves DRPC on the stream; it is paused with its first bytes put back, the callee resumes it. */
  drpc(stream: Duplex): void;
}

/**
 * Dispatches one stream of a tunnel (a yamux stream) by its first byte: DRPC, as stock Coder
 * agents speak, HTTP/2 with prior knowledge or HTTP/1.1, as Connect and gRPC clients do; any
 * other first byte closes it. An empty stream waits with no timer: a DRPC client sends a bidi
 * call's Invoke only with its first message, which can come much later. What bounds streams
 * that never speak is the session's stream limit.
 */
export function dispatchTunnelStream(stream: Duplex, handlers: TunnelStreamHandlers): void {
  sniffStream(stream, classifyTunnelStream, {}, (protocol) => {
    if (protocol === "drpc") handlers.drpc(stream);
    else handOverHttp(stream, handlers.servers, protocol, (server) => handlers.http(server, stream));
  });
}
