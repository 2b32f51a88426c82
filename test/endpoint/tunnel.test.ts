import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect as http2Connect } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { makeWorkspace } from "../support/fixtures.js";
import { startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { dialRawTunnel } from "../support/raw-tunnel.js";

describe("the tunnel: yamux streams carrying Connect over HTTP/2 and HTTP/1.1", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  const tokens: string[] = [];
  before(async () => {
    srv = await startTestServer(t.db);
    for (let i = 0; i < 6; i++) tokens.push((await makeWorkspace(t.db, { agents: ["main"] })).agents[0]!.authToken);
  });
  after(() => srv.close());

  test("a unary call answers through the tunnel", async () => {
    const tunnel = await dialRawTunnel(srv.url, tokens[0]!);
    try {
      const res = await tunnel.agent.getAnnouncementBanners({});
      assert.deepEqual(res.announcementBanners, []);
    } finally {
      tunnel.ws.close();
    }
  });

  test("1-byte WebSocket messages are one byte stream", async () => {
    const tunnel = await dialRawTunnel(srv.url, tokens[1]!, { chunkBytes: 1 });
    try {
      for (let i = 0; i < 3; i++) assert.equal((await tunnel.agent.getServiceBanner({})).enabled, false);
    } finally {
      tunnel.ws.close();
    }
  });

  test("an RPC not built yet answers Unimplemented and the session stays usable", async () => {
    const tunnel = await dialRawTunnel(srv.url, tokens[2]!);
    try {
      await assert.rejects(tunnel.agent.pushContextState({}), (err: unknown) => ConnectError.from(err).code === Code.Unimplemented);
      assert.equal((await tunnel.agent.getServiceBanner({})).enabled, false);
    } finally {
      tunnel.ws.close();
    }
  });

  test("an unknown method path answers Unimplemented (gRPC status 12) and the connection stays usable", async () => {
    const tunnel = await dialRawTunnel(srv.url, tokens[3]!);
    const h2 = http2Connect("http://agentgate.tunnel", { createConnection: () => tunnel.session.open() });
    h2.on("error", () => undefined);
    try {
      const status = await new Promise<string | undefined>((resolve, reject) => {
        const req = h2.request({ ":method": "POST", ":path": "/coder.agent.v2.Agent/NoSuchMethod", "content-type": "application/grpc", te: "trailers" });
        req.on("response", (headers) => resolve(headers["grpc-status"] as string | undefined));
        req.on("error", reject);
        req.end(Buffer.from([0, 0, 0, 0, 0]));
      });
      assert.equal(status, String(Code.Unimplemented));
      assert.equal((await tunnel.agent.getServiceBanner({})).enabled, false);
    } finally {
      h2.close();
      tunnel.ws.close();
    }
  });

  test("a message over 4 MiB is refused with ResourceExhausted and the session stays usable", async () => {
    const tunnel = await dialRawTunnel(srv.url, tokens[4]!);
    try {
      const big = { events: [{ logs: Array.from({ length: 5 }, () => "x".repeat(1024 * 1024)) }] };
      await assert.rejects(tunnel.tailnet.postTelemetry(big), (err: unknown) => ConnectError.from(err).code === Code.ResourceExhausted);
      assert.equal((await tunnel.agent.getServiceBanner({})).enabled, false);
    } finally {
      tunnel.ws.close();
    }
  });

  test("a stream opening with an HTTP/1.1 request line is served as HTTP/1.1 Connect", async () => {
    const tunnel = await dialRawTunnel(srv.url, tokens[5]!);
    try {
      const stream = tunnel.session.open();
      const body = "{}";
      stream.write(
        "POST /coder.agent.v2.Agent/GetServiceBanner HTTP/1.1\r\nHost: agentgate\r\nContent-Type: application/json\r\n" +
          `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      );
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      const text = Buffer.concat(chunks).toString();
      assert.match(text, /^HTTP\/1\.1 200 OK/);
      assert.match(text, /\r\n\r\n\{\}$/);
    } finally {
      tunnel.ws.close();
    }
  });
});
