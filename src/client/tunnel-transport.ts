import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { YamuxError } from "../yamux/index.js";
import type { Tunnel } from "./dial.js";

/** The authority of calls inside a tunnel: the server routes them by the tunnel, not by name. */
const TUNNEL_BASE_URL = "http://agentgate.tunnel";

/**
 * Connect or gRPC over HTTP/2 whose connections are yamux streams of `tunnel`. A call that needs
 * a new connection after the server said GoAway (it is draining) or after the tunnel closed fails
 * with Unavailable, as a call on a lost connection does in gRPC: worth retrying once redialled.
 */
export function tunnelTransport(tunnel: Tunnel, protocol: "connect" | "grpc"): Transport {
  const nodeOptions = {
    createConnection: () => {
      try {
        return tunnel.session.open();
      } catch (err) {
        if (err instanceof YamuxError) throw new ConnectError(`tunnel takes no new streams: ${err.message}`, Code.Unavailable, undefined, undefined, err);
        throw err;
      }
    },
  };
  return protocol === "grpc"
    ? createGrpcTransport({ baseUrl: TUNNEL_BASE_URL, nodeOptions })
    : createConnectTransport({ baseUrl: TUNNEL_BASE_URL, httpVersion: "2", nodeOptions });
}
