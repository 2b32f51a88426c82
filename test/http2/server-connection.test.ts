import assert from "node:assert/strict";
import { once } from "node:events";
import { connect as connectHttp2, constants, type ClientHttp2Session } from "node:http2";
import { connect as connectTcp, createServer, type Server, type Socket } from "node:net";
import { after, describe, it } from "node:test";
import { CLIENT_PREFACE, ErrorCode, FRAME_HEADER_BYTES, FrameType, frame, readFrameHeader, settingsPayload } from "../../src/http2/frames.js";
import { ServerConnection, type ServerConnectionOptions, type ServerStream } from "../../src/http2/server-connection.js";

/** A TCP server whose connections are ServerConnections; `handle` gets each stream. */
async function serve(handle: (stream: ServerStream) => void, options: Partial<ServerConnectionOptions> = {}): Promise<{ url: string; server: Server; port: number }> {
  const server = createServer((socket: Socket) => {
    socket.on("error", () => undefined);
    new ServerConnection(socket, { ...options, onStream: handle });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, server, port };
}

/** Reads a whole body. */
function readBody(stream: ServerStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  return new Promise((resolve) => {
    stream.onData = (c) => {
      chunks.push(Buffer.from(c));
      stream.consumed(c.length);
    };
    stream.onEnd = () => resolve(Buffer.concat(chunks));
  });
}

const echo = (stream: ServerStream) =>
  void readBody(stream).then((body) => {
    stream.respond([[":status", "200"], ["content-type", "application/octet-stream"], ["x-path", stream.header(":path") ?? ""]]);
    stream.write(body);
    stream.end([["x-length", String(body.length)]]);
  });

const servers: Server[] = [];
const sessions: ClientHttp2Session[] = [];
after(() => {
  for (const s of sessions) s.destroy();
  for (const s of servers) s.close();
});

async function request(client: ClientHttp2Session, path: string, body: Buffer) {
  const req = client.request({ [constants.HTTP2_HEADER_METHOD]: "POST", [constants.HTTP2_HEADER_PATH]: path });
  req.end(body);
  const [headers] = (await once(req, "response")) as [Record<string, string | number>];
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  const trailers = new Promise<Record<string, string>>((resolve) => req.once("trailers", resolve));
  await once(req, "end");
  return { headers, body: Buffer.concat(chunks), trailers: await trailers };
}

describe("HTTP/2 server connection against node:http2's client", () => {
  it("serves requests with headers, body and trailers, many at once on one connection", async () => {
    const { url, server } = await serve(echo);
    servers.push(server);
    const client = connectHttp2(url);
    sessions.push(client);
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => request(client, `/echo/${i}`, Buffer.from(`call ${i}`))));
    results.forEach((r, i) => {
      assert.equal(r.headers[":status"], 200);
      assert.equal(r.headers["x-path"], `/echo/${i}`);
      assert.equal(r.body.toString(), `call ${i}`);
      assert.equal(r.trailers["x-length"], String(`call ${i}`.length));
    });
  });

  it("4 MiB each way crosses the flow-control windows in both directions", async () => {
    const { url, server } = await serve(echo, { streamWindow: 65_535, connectionWindow: 65_535 * 2 });
    servers.push(server);
    const client = connectHttp2(url);
    sessions.push(client);
    const body = Buffer.alloc(4 << 20, 7);
    for (let i = 0; i < body.length; i += 4096) body[i] = i & 0xff;
    const r = await request(client, "/big", body);
    assert.ok(r.body.equals(body));
  });

  it("a stream the client resets is told, and the connection serves the next", async () => {
    let reset: (code: ErrorCode) => void;
    const wasReset = new Promise<ErrorCode>((resolve) => (reset = resolve));
    const { url, server } = await serve((stream) => {
      if (stream.header(":path") === "/hang") stream.onReset = reset;
      else echo(stream);
    });
    servers.push(server);
    const client = connectHttp2(url);
    sessions.push(client);
    const req = client.request({ [constants.HTTP2_HEADER_METHOD]: "POST", [constants.HTTP2_HEADER_PATH]: "/hang" });
    req.write("x");
    await once(client, "remoteSettings");
    req.close(constants.NGHTTP2_CANCEL);
    assert.equal(await wasReset, ErrorCode.Cancel);
    assert.equal((await request(client, "/after", Buffer.from("ok"))).body.toString(), "ok");
  });

  it("streams past SETTINGS_MAX_CONCURRENT_STREAMS are refused", async () => {
    const held: ServerStream[] = [];
    const { url, server } = await serve((stream) => void held.push(stream), { maxConcurrentStreams: 2 });
    servers.push(server);
    const client = connectHttp2(url, { peerMaxConcurrentStreams: 100 });
    sessions.push(client);
    await once(client, "remoteSettings");
    // node's client holds back streams past the server's limit: speak raw frames instead.
    client.destroy();
    const { port } = new URL(url);
    const socket = connectTcp(Number(port), "127.0.0.1");
    await once(socket, "connect");
    const headers = Buffer.from([0x83, 0x86, 0x84]); // :method POST, :scheme http, :path /
    socket.write(Buffer.concat([CLIENT_PREFACE, frame(FrameType.Settings, 0, 0, settingsPayload([])), ...[1, 3, 5].map((id) => frame(FrameType.Headers, 0x4, id, headers))]));
    const rst = await readFrames(socket, (f) => f.type === FrameType.RstStream);
    assert.equal(rst.streamId, 5);
    assert.equal(rst.payload.readUInt32BE(0), ErrorCode.RefusedStream);
    assert.equal(held.length, 2);
    socket.destroy();
  });

  for (const [what, bytes, code] of [
    ["DATA on stream 0", frame(FrameType.Data, 0, 0, Buffer.from("x")), ErrorCode.ProtocolError],
    ["a header block that is not HPACK", frame(FrameType.Headers, 0x4, 1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff])), ErrorCode.CompressionError],
    ["a 20 KB frame", Buffer.concat([Buffer.from([0x00, 0x50, 0x00, FrameType.Data, 0, 0, 0, 0, 1]), Buffer.alloc(0x5000)]), ErrorCode.FrameSizeError],
    ["PUSH_PROMISE", frame(FrameType.PushPromise, 0x4, 1, Buffer.alloc(4)), ErrorCode.ProtocolError],
    ["a stream id going backwards", Buffer.concat([frame(FrameType.Headers, 0x5, 5, Buffer.from([0x83, 0x86, 0x84])), frame(FrameType.Headers, 0x5, 3, Buffer.from([0x83, 0x86, 0x84]))]), ErrorCode.ProtocolError],
  ] as const) {
    it(`${what} ends the connection with GOAWAY ${code}`, async () => {
      const { server, port } = await serve(echo);
      servers.push(server);
      const socket = connectTcp(port, "127.0.0.1");
      await once(socket, "connect");
      socket.write(Buffer.concat([CLIENT_PREFACE, frame(FrameType.Settings, 0, 0, settingsPayload([])), bytes]));
      const goAway = await readFrames(socket, (f) => f.type === FrameType.GoAway);
      assert.equal(goAway.payload.readUInt32BE(4), code);
      await once(socket, "end");
      socket.destroy();
    });
  }

  it("answers PING with its payload", async () => {
    const { url, server } = await serve(echo);
    servers.push(server);
    const client = connectHttp2(url);
    sessions.push(client);
    await once(client, "connect");
    const payload = Buffer.from("12345678");
    const echoed = await new Promise<Buffer>((resolve, reject) => client.ping(payload, (err, _ms, p) => (err ? reject(err) : resolve(p))));
    assert.ok(echoed.equals(payload));
  });
});

describe("grpc-go's bandwidth probe", () => {
  const BDP_PING = Buffer.from([2, 4, 16, 16, 9, 14, 7, 7]);
  const HOLD_MS = 300;

  /** A raw client socket past the preface, and every frame the server sends, in order. */
  async function rawClient(port: number) {
    const socket = connectTcp(port, "127.0.0.1");
    await once(socket, "connect");
    const frames: { type: number; flags: number; payload: Buffer; at: number }[] = [];
    let waiters: (() => void)[] = [];
    let buffered = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= FRAME_HEADER_BYTES) {
        const h = readFrameHeader(buffered, 0);
        if (buffered.length < FRAME_HEADER_BYTES + h.length) break;
        frames.push({ type: h.type, flags: h.flags, payload: buffered.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + h.length), at: performance.now() });
        buffered = buffered.subarray(FRAME_HEADER_BYTES + h.length);
      }
      for (const w of waiters) w();
      waiters = [];
    });
    socket.write(Buffer.concat([CLIENT_PREFACE, frame(FrameType.Settings, 0, 0, settingsPayload([]))]));
    const until = async (match: (f: (typeof frames)[number]) => boolean) => {
      for (;;) {
        const found = frames.find(match);
        if (found !== undefined) return found;
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    };
    // The server's acknowledgement of our SETTINGS is a write a held PING ACK would join.
    await until((f) => f.type === FrameType.Settings && (f.flags & 1) !== 0);
    return { socket, frames, until };
  }

  const isPingAck = (payload: Buffer) => (f: { type: number; flags: number; payload: Buffer }) => f.type === FrameType.Ping && (f.flags & 1) !== 0 && f.payload.equals(payload);

  it("is acknowledged after the DATA of the connection's next write, not ahead of it; other PINGs at once", async () => {
    const { server, port } = await serve(echo, { bdpPingAckHoldMs: 60_000 });
    servers.push(server);
    const { socket, frames, until } = await rawClient(port);
    try {
      // A liveness PING, on an otherwise idle connection, is answered without waiting for a write.
      const liveness = Buffer.from("liveness");
      socket.write(frame(FrameType.Ping, 0, 0, liveness));
      await until(isPingAck(liveness));
      // The probe, then a whole request in the same write: answered at once, its acknowledgement
      // would go out ahead of the response; held, it follows the response's DATA.
      const headers = Buffer.from([0x83, 0x86, 0x84, 0x41, 0x01, 0x61]);
      socket.write(Buffer.concat([frame(FrameType.Ping, 0, 0, BDP_PING), frame(FrameType.Headers, 0x4, 1, headers), frame(FrameType.Data, 0x1, 1, Buffer.from("hi"))]));
      const ack = await until(isPingAck(BDP_PING));
      const data = frames.findIndex((f) => f.type === FrameType.Data);
      assert.ok(data >= 0 && data < frames.indexOf(ack), "the response's DATA comes before the acknowledgement");
    } finally {
      socket.destroy();
    }
  });

  it("is acknowledged alone once the hold is over", async () => {
    const { server, port } = await serve(echo, { bdpPingAckHoldMs: HOLD_MS });
    servers.push(server);
    const { socket, until } = await rawClient(port);
    try {
      const sent = performance.now();
      socket.write(frame(FrameType.Ping, 0, 0, BDP_PING));
      const ack = await until(isPingAck(BDP_PING));
      assert.ok(ack.at - sent >= HOLD_MS * 0.9, `acknowledged ${Math.round(ack.at - sent)} ms after the probe, before the hold was over`);
    } finally {
      socket.destroy();
    }
  });
});

/** Reads frames off a raw socket until one matches. */
function readFrames(socket: Socket, match: (f: { type: number; streamId: number; payload: Buffer }) => boolean): Promise<{ type: number; streamId: number; payload: Buffer }> {
  let buffered = Buffer.alloc(0);
  return new Promise((resolve, reject) => {
    socket.on("error", reject);
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= FRAME_HEADER_BYTES) {
        const h = readFrameHeader(buffered, 0);
        if (buffered.length < FRAME_HEADER_BYTES + h.length) return;
        const f = { type: h.type, streamId: h.streamId, payload: buffered.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + h.length) };
        buffered = buffered.subarray(FRAME_HEADER_BYTES + h.length);
        if (match(f)) return resolve(f);
      }
    });
  });
}
