import type { Server as Http1Server } from "node:http";
import type { Http2Server } from "node:http2";
import type { Duplex } from "node:stream";
import type { ContextValues } from "@connectrpc/connect";
import type { Logger } from "../log.js";
import { serveDrpc, type RpcCore } from "../rpc/index.js";
import type { HttpServers } from "../tunnel/http-dispatch.js";
import type { TunnelStreamHandlers } from "../tunnel/tunnel-stream-dispatch.js";

/** Who a tunnel's calls come from, as each protocol needs to know it. */
export interface TunnelCaller {
  /** Hands an HTTP stream to `server` as this caller's connection. */
  handOverHttp(server: Http1Server | Http2Server, stream: Duplex): void;
  /** The context values every DRPC call of the tunnel runs with (the caller's identity). */
  contextValues(): ContextValues;
}

/**
 * Where a tunnel's streams go, for `dispatchTunnelStream`: HTTP to the servers as `caller`'s
 * connection, DRPC to the RPC core with `caller`'s context values, asked for once, on the
 * tunnel's first DRPC stream (an idle tunnel of a Connect agent never pays for them).
 */
export function tunnelStreamHandlers(parts: { servers: HttpServers; rpcCore: RpcCore; logger: Logger }, caller: TunnelCaller): TunnelStreamHandlers {
  const { servers, rpcCore, logger } = parts;
  let values: ContextValues | undefined;
  return {
    servers,
    http: (server, stream) => caller.handOverHttp(server, stream),
    drpc: (stream) => {
      values ??= caller.contextValues();
      serveDrpc(stream, rpcCore, values, { onProtocolError: (err) => logger.debug({ err }, "DRPC protocol error; stream closed") });
      stream.resume();
    },
  };
}
