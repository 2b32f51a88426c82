/**
 * Unary RPC cost of DRPC (one yamux stream per RPC, as a Coder agent calls) through the RPC core,
 * against Connect over HTTP/2 on the same yamux session (the tunnel's path today), in one run and
 * one process: client and server share the CPU, so µs per RPC is both sides together. The handler
 * is the same trivial GetAnnouncementBanners for both.
 *
 *   node --import tsx bench/drpc.ts
 *
 * Env: CALLS (per row, default 20000), CONCURRENCY (default 32).
 */
import { once } from "node:events";
import { createServer as createHttp2Server } from "node:http2";
import { connect, createServer, type AddressInfo } from "node:net";
import { createClient, createContextValues, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport } from "@connectrpc/connect-node";
import { Agent } from "../gen/coder/agent/v2/agent_pb.js";
import { createDrpcClient, RpcCore, rpcRegistration, serveDrpc } from "../src/rpc/index.js";
import { Session, type Stream } from "../src/yamux/index.js";

const CALLS = Number(process.env.CALLS ?? 20_000);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 32);

const agent: Partial<ServiceImpl<typeof Agent>> = {
  getAnnouncementBanners: () => ({ announcementBanners: [{ enabled: true, message: "hello", backgroundColor: "#000" }] }),
};

/** A yamux session pair over TCP on 127.0.0.1; `serve` gets each stream the client opens. */
async function sessionPair(serve: (stream: Stream) => void): Promise<{ client: Session; close(): void }> {
  const listener = createServer();
  listener.listen(0, "127.0.0.1");
  await once(listener, "listening");
  const accepted = once(listener, "connection");
  const socket = connect((listener.address() as AddressInfo).port, "127.0.0.1");
  const [serverSocket] = (await accepted) as [import("node:net").Socket];
  // As agentgate's HTTP server does: Nagle would hold back HTTP/2's small writes.
  socket.setNoDelay(true);
  serverSocket.setNoDelay(true);
  const server = new Session(serverSocket, { role: "server" });
  server.on("stream", serve);
  const client = new Session(socket, { role: "client" });
  return {
    client,
    close() {
      client.destroy();
      server.destroy();
      listener.close();
    },
  };
}

/** Runs `call` CALLS times, CONCURRENCY at once; returns RPCs/s and process CPU µs per RPC. */
async function measure(call: () => Promise<unknown>): Promise<{ rps: number; cpuMicros: number }> {
  for (let i = 0; i < 500; i++) await call(); // warm up the JIT and the pools
  let left = CALLS;
  const cpu = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (left-- > 0) await call();
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { rps: CALLS / seconds, cpuMicros: (used.user + used.system) / CALLS };
}

const core = new RpcCore([rpcRegistration(Agent, agent)]);
const values = createContextValues();
const drpc = await sessionPair((stream) => void serveDrpc(stream, core, values));
const drpcClient = createDrpcClient(Agent, drpc.client);
const drpcRow = await measure(() => drpcClient.getAnnouncementBanners({}));
drpc.close();

const http2 = createHttp2Server();
http2.on("request", connectNodeAdapter({ routes: (router) => router.service(Agent, agent) }));
const h2 = await sessionPair((stream) => void http2.emit("connection", stream));
const connectClient = createClient(
  Agent,
  createConnectTransport({ baseUrl: "http://bench.tunnel", httpVersion: "2", nodeOptions: { createConnection: () => h2.client.open() } }),
);
const connectRow = await measure(() => connectClient.getAnnouncementBanners({}));
h2.close();

const rows = [
  ["Connect over HTTP/2 on one yamux stream (baseline)", connectRow],
  ["DRPC, one yamux stream per RPC", drpcRow],
] as const;
console.log(`unary GetAnnouncementBanners, ${CALLS} calls, concurrency ${CONCURRENCY}, client and server in one process`);
console.log("path".padEnd(52), "RPCs/s".padStart(9), "µs CPU/RPC".padStart(11), "× baseline RPS".padStart(15));
for (const [name, row] of rows) {
  console.log(name.padEnd(52), row.rps.toFixed(0).padStart(9), row.cpuMicros.toFixed(0).padStart(11), (row.rps / connectRow.rps).toFixed(2).padStart(15));
}
process.exit(0);
