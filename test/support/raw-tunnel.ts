/**
 * A hand-built agent tunnel for tests that need control the SDK hides: a plain `ws` WebSocket,
 * an optional re-chunking of every write into tiny binary messages, our yamux client session,
 * and Connect clients over HTTP/2 on its streams.
 */
import type { Duplex } from "node:stream";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { WebSocket } from "ws";
import { Agent } from "../../gen/coder/agent/v2/agent_pb.js";
import { Tailnet } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { webSocketDuplex } from "../../src/tunnel/websocket-duplex.js";
import { Session } from "../../src/yamux/index.js";
import { reshapedWrites } from "./reshaped-writes.js";

export interface RawTunnel {
  ws: WebSocket;
  session: Session;
  agent: Client<typeof Agent>;
  tailnet: Client<typeof Tailnet>;
  /** Resolves with the close code and reason the server sent. */
  closed: Promise<{ code: number; reason: string }>;
}

/** Opens the WebSocket; with `chunkBytes`, every write goes out as binary messages of at most that size. */
export function dialRawTunnel(baseUrl: string, token: string, opts: { chunkBytes?: number; version?: string } = {}): Promise<RawTunnel> {
  const url = `${baseUrl.replace(/^http/, "ws")}/api/v2/workspaceagents/me/rpc?version=${opts.version ?? "2.13"}`;
  const ws = new WebSocket(url, { headers: { "Coder-Session-Token": token }, perMessageDeflate: false });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  return new Promise((resolve, reject) => {
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res) => reject(new Error(`dial refused: ${res.statusCode}`)));
    ws.once("open", () => {
      const transport = opts.chunkBytes ? chunkedWebSocketDuplex(ws, opts.chunkBytes) : webSocketDuplex(ws);
      const session = new Session(transport, { role: "client" });
      const connect = createConnectTransport({ baseUrl: "http://agentgate.tunnel", httpVersion: "2", nodeOptions: { createConnection: () => session.open() } });
      resolve({ ws, session, agent: createClient(Agent, connect), tailnet: createClient(Tailnet, connect), closed });
    });
  });
}

/** Like webSocketDuplex, but each write is cut into binary messages of at most `size` bytes. */
function chunkedWebSocketDuplex(ws: WebSocket, size: number): Duplex {
  return reshapedWrites(webSocketDuplex(ws), (chunk, callback) => {
    for (let i = 0; i < chunk.length; i += size) ws.send(chunk.subarray(i, i + size), { binary: true });
    callback();
  });
}
