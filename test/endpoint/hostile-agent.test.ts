import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect as http2Connect } from "node:http2";
import { connect as tcpConnect } from "node:net";
import { gzipSync } from "node:zlib";
import { WebSocket } from "ws";
import { makeWorkspace } from "../support/fixtures.js";
import { startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { dialRawTunnel } from "../support/raw-tunnel.js";

/** Bad input from one agent ends that agent's tunnel (or stream) and nothing else. */
describe("hostile input never takes down the server or another agent", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  const tokens: string[] = [];
  before(async () => {
    srv = await startTestServer(t.db, { maxStreamsPerAgent: 8 });
    for (let i = 0; i < 7; i++) tokens.push((await makeWorkspace(t.db, { agents: ["main"] })).agents[0]!.authToken);
  });
  after(() => srv.close());

  const openSocket = (token: string) =>
    new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(`${srv.url.replace("http", "ws")}/api/v2/workspaceagents/me/rpc`, { headers: { "Coder-Session-Token": token } });
      ws.once("open", () => resolve(ws));
      ws.once("error", reject);
    });
  const closeOf = (ws: WebSocket) => new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
  const closeWithReason = (ws: WebSocket) =>
    new Promise<{ code: number; reason: string }>((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  /** A well-behaved agent that must keep working whatever the others do. */
  let bystander: Awaited<ReturnType<typeof dialRawTunnel>>;
  before(async () => {
    bystander = await dialRawTunnel(srv.url, tokens[0]!);
  });
  after(() => bystander.ws.close());
  const bystanderWorks = async () => assert.equal((await bystander.agent.getServiceBanner({})).enabled, false);

  test("random bytes instead of yamux frames close that tunnel with 1002 and the reason", async () => {
    const ws = await openSocket(tokens[1]!);
    const closed = closeWithReason(ws);
    ws.send(Buffer.from("this is not a yamux frame at all, just text bytes"));
    const { code, reason } = await closed;
    assert.equal(code, 1002);
    assert.match(reason, /version/);
    const metrics = await srv.server.metrics.registry.getSingleMetricAsString("agentgate_yamux_protocol_errors_total");
    assert.match(metrics, /agentgate_yamux_protocol_errors_total [1-9]/);
    await bystanderWorks();
  });

  test("a text WebSocket message closes the tunnel with 1003", async () => {
    const ws = await openSocket(tokens[2]!);
    const closed = closeOf(ws);
    ws.send("hello", { binary: false });
    assert.equal(await closed, 1003);
    await bystanderWorks();
  });

  test("a WebSocket message over the size bound closes the tunnel with 1009", async () => {
    const ws = await openSocket(tokens[3]!);
    const closed = closeOf(ws);
    ws.send(Buffer.alloc(2 * 1024 * 1024));
    assert.equal(await closed, 1009);
    await bystanderWorks();
  });

  test("garbage on one yamux stream fails that stream only; the tunnel serves the next call", async () => {
    const tunnel = await dialRawTunnel(srv.url, tokens[4]!);
    try {
      const stream = tunnel.session.open();
      stream.on("error", () => undefined);
      const ended = new Promise<void>((resolve) => stream.once("close", () => resolve()));
      stream.write(Buffer.from("\x00\x01garbage that is neither HTTP/1.1 nor HTTP/2\r\n\r\n"));
      stream.resume();
      await ended;
      assert.equal((await tunnel.agent.getServiceBanner({})).enabled, false);
    } finally {
      tunnel.ws.close();
    }
  });

  test("opening more streams than --max-streams-per-agent gets refusals, not a dead session", async () => {
    const tunnel = await dialRawTunnel(srv.url, tokens[5]!);
    try {
      const streams = Array.from({ length: 12 }, () => tunnel.session.open());
      const outcomes = await Promise.all(
        streams.map(
          (s) =>
            new Promise<string>((resolve) => {
              s.once("error", (err: Error & { code?: string }) => resolve(err.code ?? "error"));
              // A stream the server accepted is held open by its HTTP sniffer: write nothing, wait for the verdict.
              setImmediate(() => s.write(Buffer.from("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")));
              s.once("data", () => resolve("served"));
            }),
        ),
      );
      assert.ok(outcomes.filter((o) => o === "served").length <= 8);
      assert.ok(outcomes.some((o) => o === "ERR_YAMUX_STREAM_REFUSED"), `outcomes: ${outcomes.join(",")}`);
      for (const s of streams) s.destroy();
      await bystanderWorks();
    } finally {
      tunnel.ws.close();
    }
  });

  test("garbage on the plain TCP port gets the connection closed; the server serves on", async () => {
    const socket = tcpConnect(srv.server.address.port, "127.0.0.1");
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    socket.on("error", () => undefined);
    socket.on("data", () => undefined);
    socket.write(Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x0d, 0x0a, 0x0d, 0x0a]));
    await closed;
    assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
    await bystanderWorks();
  });

  /** Sends raw bytes on a fresh TCP connection and resolves with everything answered until it closes. */
  const rawExchange = (bytes: string | Buffer) =>
    new Promise<string>((resolve) => {
      const socket = tcpConnect(srv.server.address.port, "127.0.0.1");
      let text = "";
      socket.on("error", () => undefined);
      socket.on("data", (c: Buffer) => (text += c.toString("latin1")));
      socket.once("close", () => resolve(text));
      socket.write(bytes);
    });

  test("headers past the size limit get the connection closed; the server serves on", async () => {
    const answer = await rawExchange(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(64 * 1024)}\r\n\r\n`);
    assert.doesNotMatch(answer, /^HTTP\/1\.1 200/);
    assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
    await bystanderWorks();
  });

  test("a 4 GiB Content-Length is refused before its body, with a token or without", async () => {
    const head = (token?: string) =>
      "POST /coder.agent.v2.Agent/GetManifest HTTP/1.1\r\nHost: x\r\nContent-Type: application/proto\r\n" +
      `Content-Length: ${4 * 1024 ** 3}\r\n${token ? `Coder-Session-Token: ${token}\r\n` : ""}\r\n`;
    // Without a token the declaration alone is past every budget: refused either way, body unread.
    assert.match(await rawExchange(head()), /^HTTP\/1\.1 (401|429) /);
    assert.match(await rawExchange(head(tokens[6]!)), /^HTTP\/1\.1 429 /);
    await bystanderWorks();
  });

  test("a gzip bomb from an agent is refused ResourceExhausted, not inflated", async () => {
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
    const res = await fetch(`${srv.url}/coder.agent.v2.Agent/GetManifest`, {
      method: "POST",
      headers: { "content-type": "application/json", "content-encoding": "gzip", "coder-session-token": tokens[6]! },
      body: bomb,
    });
    assert.equal(((await res.json()) as { code: string }).code, "resource_exhausted");
    await bystanderWorks();
  });

  test("HTTP/2 rapid reset: streams opened and cancelled at once by the thousand leave the server serving", async () => {
    const session = http2Connect(srv.url);
    session.on("error", () => undefined);
    await new Promise<void>((resolve) => session.once("connect", () => resolve()));
    for (let i = 0; i < 2_000 && !session.destroyed; i++) {
      const stream = session.request({ ":method": "POST", ":path": "/coder.agent.v2.Agent/GetManifest", "content-type": "application/grpc" });
      stream.on("error", () => undefined);
      stream.close(0x8); // CANCEL
    }
    session.destroy();
    assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
    await bystanderWorks();
  });
});
