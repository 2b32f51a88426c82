/**
 * What the HTTP/2 layer of a tunnel costs: the Go probe (hashicorp yamux + grpc-go) calls a
 * unary method through a WebSocket + yamux tunnel into this process, where each yamux stream is
 * served either by node:http2 (nghttp2 behind a JS stream, as the server does today) or by
 * src/http2's ServerConnection. Both decode the request and encode the response with
 * protobuf-es the same way; nothing else differs. Prints server CPU µs
 * per RPC at concurrency 1 and 32 and RSS per connected tunnel (one call made on each).
 *
 *   AGENTGATE_INTEROP_KIT=/work/kit node --expose-gc --import tsx bench/http2-layer.ts
 *
 * Env: CALLS (per row, default 20000), TUNNELS (default 1000). The handlers here serve only
 * this method: they measure the layer, not the server's RPC path (which bench/tunnel.ts does).
 */
import { execFile } from "node:child_process";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttp2Server, type ServerHttp2Stream } from "node:http2";
import type { Duplex } from "node:stream";
import { promisify } from "node:util";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { WebSocketServer } from "ws";
import { GetAnnouncementBannersRequestSchema, GetAnnouncementBannersResponseSchema } from "../gen/coder/agent/v2/agent_pb.js";
import type { HeaderList } from "../src/http2/hpack-decoder.js";
import { ServerConnection } from "../src/http2/server-connection.js";
import { webSocketDuplex } from "../src/tunnel/websocket-duplex.js";
import { TUNNEL_MAX_MESSAGE_BYTES, TUNNEL_MAX_STREAM_WINDOW } from "../src/tunnel/tunnel-limits.js";
import { Session, type Stream } from "../src/yamux/index.js";

const KIT = process.env.AGENTGATE_INTEROP_KIT ?? "/work/kit";
const CALLS = Number(process.env.CALLS ?? 20_000);
const TUNNELS = Number(process.env.TUNNELS ?? 1000);
const METHOD = "coder.agent.v2.Agent/GetAnnouncementBanners";
const run = promisify(execFile);

/** The same work for both layers: decode the request message, make and encode the response. */
function handle(message: Uint8Array): Uint8Array {
  fromBinary(GetAnnouncementBannersRequestSchema, message);
  return toBinary(GetAnnouncementBannersResponseSchema, create(GetAnnouncementBannersResponseSchema));
}

function envelope(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/** node:http2: the stream handed to an Http2Server as a connection, as the tunnel does. */
function nodeLayer(): (stream: Duplex) => void {
  const server = createHttp2Server();
  server.on("stream", (stream: ServerHttp2Stream) => {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => {
      const body = Buffer.concat(chunks);
      const response = envelope(handle(body.subarray(5)));
      stream.respond({ ":status": 200, "content-type": "application/grpc+proto" }, { waitForTrailers: true });
      stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(response);
    });
  });
  return (stream) => server.emit("connection", stream);
}

const RESPONSE_HEADERS: HeaderList = [[":status", "200"], ["content-type", "application/grpc+proto"]];
const RESPONSE_TRAILERS: HeaderList = [["grpc-status", "0"]];

/** src/http2's ServerConnection: each stream's body read, the same call made, the response written. */
function codecLayer(): (stream: Duplex) => void {
  return (transport) =>
    void new ServerConnection(transport, {
      onStream(stream) {
        const chunks: Buffer[] = [];
        stream.onData = (chunk) => {
          chunks.push(chunk);
          stream.consumed(chunk.length);
        };
        stream.onEnd = () => {
          const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
          const response = envelope(handle(body.subarray(5)));
          stream.respond(RESPONSE_HEADERS);
          stream.write(response);
          stream.end(RESPONSE_TRAILERS);
        };
      },
    });
}

/** A WebSocket endpoint whose yamux streams go to `serve`; any token is let in. */
async function tunnelServer(serve: (stream: Duplex) => void): Promise<{ url: string; server: Server; wss: WebSocketServer }> {
  const server = createHttpServer();
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: TUNNEL_MAX_MESSAGE_BYTES });
  server.on("upgrade", (req, socket, head) =>
    wss.handleUpgrade(req, socket, head, (ws) => {
      const session = new Session(webSocketDuplex(ws), { role: "server", maxWindow: TUNNEL_MAX_STREAM_WINDOW, maxMessageBytes: TUNNEL_MAX_MESSAGE_BYTES });
      session.on("stream", (stream: Stream) => {
        stream.on("error", () => undefined);
        serve(stream);
      });
      session.on("error", () => undefined);
      ws.once("close", () => session.destroy());
    }),
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, server, wss };
}

const desc = `${process.env.TMPDIR ?? "/tmp"}/agentgate-http2-layer-${process.pid}.binpb`;
await run("npx", ["--no-install", "buf", "build", "-o", desc]);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) console.warn("run with --expose-gc for the RSS figures");

const rows: string[] = [];
for (const [name, layer] of [["node:http2", nodeLayer], ["src/http2", codecLayer]] as const) {
  const { url, server, wss } = await tunnelServer(layer());
  const probe = (args: string[]) => run(`${KIT}/bin/agentprobe`, ["-url", url, "-token", "x", "-desc", desc, ...args], { maxBuffer: 1 << 24 });
  for (const c of ["1", "32"]) {
    await probe(["soak", "-n", "2000", "-c", c, METHOD, "{}"]);
    const before = process.cpuUsage();
    const { stdout, stderr } = await probe(["soak", "-n", String(CALLS), "-c", c, METHOD, "{}"]);
    const used = process.cpuUsage(before);
    const line = (stdout + stderr).split("\n").find((l) => l.startsWith("soak:")) ?? "";
    const ok = Number(/ok=(\d+)/.exec(line)?.[1] ?? 0);
    const rps = /rps=(\S+)/.exec(line)?.[1];
    rows.push(`${name.padEnd(16)} c=${c.padEnd(3)} ${String(rps).padStart(7)} rps  ${((used.user + used.system) / Math.max(ok, 1)).toFixed(1).padStart(7)} µs/RPC  ${line.replace(/^soak: /, "")}`);
  }
  gc?.();
  const rssBefore = process.memoryUsage().rss;
  const held = probe(["tunnels", "-n", String(TUNNELS), "-t", "6s", METHOD, "{}"]);
  await new Promise((r) => setTimeout(r, 4000));
  gc?.();
  const rss = process.memoryUsage().rss;
  await held;
  rows.push(`${name.padEnd(16)} ${TUNNELS} tunnels (one call each): RSS ${((rss - rssBefore) / TUNNELS / 1024).toFixed(1)} KB per tunnel`);
  wss.close();
  server.closeAllConnections();
  server.close();
}
console.log(`\nGo probe soak of ${METHOD} (${CALLS} calls per row) through WebSocket + yamux; server CPU of this process per RPC`);
for (const row of rows) console.log(row);
