/**
 * What the HTTP/2 layer of a tunnel costs: the Go probe (hashicorp yamux + grpc-go) calls a
 * unary method through a WebSocket + yamux tunnel into this process, where each yamux stream is
 * served either by node:http2 (nghttp2 behind a JS stream, as the server does today) or by a
 * minimal HTTP/2 connection on src/http2's HPACK and frame codec. Both decode the request and
 * encode the response with protobuf-es the same way; nothing else differs. Prints server CPU µs
 * per RPC at concurrency 1 and 32 and RSS per connected tunnel (one call made on each).
 *
 *   AGENTGATE_INTEROP_KIT=/work/kit node --expose-gc --import tsx bench/http2-layer.ts
 *
 * Env: CALLS (per row, default 20000), TUNNELS (default 1000). The minimal connection here is a
 * measuring device, not a server: it serves only this unary method, ignores the peer's flow
 * control windows (the responses are a few bytes) and checks nothing.
 */
import { execFile } from "node:child_process";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttp2Server, type ServerHttp2Stream } from "node:http2";
import type { Duplex } from "node:stream";
import { promisify } from "node:util";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { WebSocketServer } from "ws";
import { GetAnnouncementBannersRequestSchema, GetAnnouncementBannersResponseSchema } from "../gen/coder/agent/v2/agent_pb.js";
import { CLIENT_PREFACE, FRAME_HEADER_BYTES, FrameFlag, FrameType, Setting, frame, readFrameHeader, settingsPayload, writeFrameHeader } from "../src/http2/frames.js";
import { HpackDecoder } from "../src/http2/hpack-decoder.js";
import { encodeHeaders } from "../src/http2/hpack-encoder.js";
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

const RESPONSE_HEADERS = encodeHeaders([[":status", "200"], ["content-type", "application/grpc+proto"]]);
const RESPONSE_TRAILERS = encodeHeaders([["grpc-status", "0"]]);
/** The receive window raised at once, and topped up when half is used. */
const CONNECTION_WINDOW = 1 << 30;

/** A minimal HTTP/2 server connection on src/http2: the unary call and what grpc-go sends besides. */
function codecLayer(): (stream: Duplex) => void {
  return (transport) => {
    const decoder = new HpackDecoder();
    const bodies = new Map<number, Buffer[]>();
    let pending: Buffer = Buffer.alloc(0);
    let prefaceSeen = false;
    let consumed = 0;
    transport.write(
      Buffer.concat([
        frame(FrameType.Settings, 0, 0, settingsPayload([[Setting.MaxConcurrentStreams, 100], [Setting.InitialWindowSize, 1 << 20]])),
        frame(FrameType.WindowUpdate, 0, 0, u32(CONNECTION_WINDOW - 65_535)),
      ]),
    );
    transport.on("data", (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      if (!prefaceSeen) {
        if (pending.length < CLIENT_PREFACE.length) return;
        pending = pending.subarray(CLIENT_PREFACE.length);
        prefaceSeen = true;
      }
      const out: Buffer[] = [];
      while (pending.length >= FRAME_HEADER_BYTES) {
        const h = readFrameHeader(pending, 0);
        if (pending.length < FRAME_HEADER_BYTES + h.length) break;
        let payload = pending.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + h.length);
        pending = pending.subarray(FRAME_HEADER_BYTES + h.length);
        switch (h.type) {
          case FrameType.Settings:
            if ((h.flags & FrameFlag.Ack) === 0) out.push(frame(FrameType.Settings, FrameFlag.Ack, 0));
            break;
          case FrameType.Ping:
            if ((h.flags & FrameFlag.Ack) === 0) out.push(frame(FrameType.Ping, FrameFlag.Ack, 0, payload));
            break;
          case FrameType.Headers: {
            if (h.flags & FrameFlag.Padded) payload = payload.subarray(1, payload.length - payload[0]!);
            if (h.flags & FrameFlag.Priority) payload = payload.subarray(5);
            decoder.decode(payload);
            bodies.set(h.streamId, []);
            if (h.flags & FrameFlag.EndStream) out.push(respond(h.streamId, Buffer.alloc(0)));
            break;
          }
          case FrameType.Data: {
            consumed += h.length;
            if (h.flags & FrameFlag.Padded) payload = payload.subarray(1, payload.length - payload[0]!);
            const body = bodies.get(h.streamId);
            body?.push(payload);
            if (h.flags & FrameFlag.EndStream && body !== undefined) {
              bodies.delete(h.streamId);
              out.push(respond(h.streamId, Buffer.concat(body)));
            }
            break;
          }
          case FrameType.RstStream:
            bodies.delete(h.streamId);
            break;
          case FrameType.GoAway:
            transport.end();
            return;
        }
      }
      if (consumed > CONNECTION_WINDOW / 2) {
        out.push(frame(FrameType.WindowUpdate, 0, 0, u32(consumed)));
        consumed = 0;
      }
      if (out.length > 0) transport.write(out.length === 1 ? out[0] : Buffer.concat(out));
    });
  };
}

/** HEADERS, DATA and trailers of a response in one buffer. */
function respond(streamId: number, body: Buffer): Buffer {
  const data = envelope(handle(body.subarray(5)));
  const out = Buffer.allocUnsafe(3 * FRAME_HEADER_BYTES + RESPONSE_HEADERS.length + data.length + RESPONSE_TRAILERS.length);
  let at = 0;
  writeFrameHeader(out, at, RESPONSE_HEADERS.length, FrameType.Headers, FrameFlag.EndHeaders, streamId);
  out.set(RESPONSE_HEADERS, (at += FRAME_HEADER_BYTES));
  writeFrameHeader(out, (at += RESPONSE_HEADERS.length), data.length, FrameType.Data, 0, streamId);
  out.set(data, (at += FRAME_HEADER_BYTES));
  writeFrameHeader(out, (at += data.length), RESPONSE_TRAILERS.length, FrameType.Headers, FrameFlag.EndHeaders | FrameFlag.EndStream, streamId);
  out.set(RESPONSE_TRAILERS, at + FRAME_HEADER_BYTES);
  return out;
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n);
  return b;
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
for (const [name, layer] of [["node:http2", nodeLayer], ["src/http2 codec", codecLayer]] as const) {
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
