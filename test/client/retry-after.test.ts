import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { connect, type AddressInfo, type Socket } from "node:net";
import { connectAgent, DialRefusedError, type RedialInfo } from "../../src/client/index.js";
import { retryAfterDelay } from "../../src/client/agent-connection.js";
import { MAX_RETRY_AFTER_MS, parseRetryAfter } from "../../src/client/dial.js";
import { makeWorkspace } from "../support/fixtures.js";
import { startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";

describe("Retry-After", () => {
  test("is read as delay-seconds or an HTTP-date, capped, and ignored when unreadable", () => {
    const now = Date.parse("2026-12-01T12:00:00Z");
    assert.equal(parseRetryAfter("2", now), 2_000);
    assert.equal(parseRetryAfter(" 0 ", now), 0);
    assert.equal(parseRetryAfter("Tue, 01 Dec 2026 12:00:05 GMT", now), 5_000);
    assert.equal(parseRetryAfter("Tue, 01 Dec 2026 11:00:00 GMT", now), 0, "a date in the past means now");
    assert.equal(parseRetryAfter("86400", now), MAX_RETRY_AFTER_MS);
    assert.equal(parseRetryAfter("soon", now), undefined);
    assert.equal(parseRetryAfter(undefined, now), undefined);
  });

  test("is waited with up to half of it again as jitter", () => {
    assert.equal(retryAfterDelay(1_000, () => 0), 1_000);
    assert.equal(retryAfterDelay(1_000, () => 0.999_999), 1_499);
    const samples = Array.from({ length: 200 }, () => retryAfterDelay(2_000));
    assert.ok(samples.every((d) => d >= 2_000 && d < 3_000));
    assert.ok(new Set(samples).size > 50, "a refused fleet comes back spread out");
  });
});

/**
 * In front of a real server: refuses the first `refusals` upgrades with 503 (and `retryAfter`
 * when given), then passes upgrades through to the server untouched.
 */
async function overloadedGate(target: string, refusals: number, retryAfter: string | undefined): Promise<{ url: string; upgrades: () => number; close(): Promise<void> }> {
  let upgrades = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((_req, res) => res.writeHead(404).end());
  server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
    if (upgrades++ < refusals) {
      const body = JSON.stringify({ message: "server overloaded" });
      socket.end(
        `HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${retryAfter === undefined ? "" : `retry-after: ${retryAfter}\r\n`}connection: close\r\n\r\n${body}`,
      );
      return;
    }
    const { hostname, port } = new URL(target);
    const upstream = connect(Number(port), hostname, () => {
      const headers = Object.entries(req.headersDistinct).flatMap(([k, vs]) => (vs ?? []).map((v) => `${k}: ${v}\r\n`)).join("");
      upstream.write(`${req.method} ${req.url} HTTP/1.1\r\n${headers}\r\n`);
      upstream.write(head);
      socket.pipe(upstream).pipe(socket);
    });
    sockets.add(upstream);
    upstream.on("error", () => socket.destroy());
    socket.on("close", () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    upgrades: () => upgrades,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe("the SDK refused by an overloaded server", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer(t.db);
  });
  after(() => srv.close());

  test("503 with Retry-After: dials again after that delay (with jitter), then serves", async () => {
    const gate = await overloadedGate(srv.url, 1, "1");
    const ws = await makeWorkspace(t.db, { agents: ["main"] });
    const conn = connectAgent({ url: gate.url, token: ws.agents[0]!.authToken });
    try {
      const refused = new Promise<[Error, RedialInfo]>((resolve) => conn.once("disconnected", (err: Error, info: RedialInfo) => resolve([err, info])));
      const banner = conn.agent.getServiceBanner({});
      const [err, info] = await refused;
      assert.ok(err instanceof DialRefusedError);
      assert.equal(err.status, 503);
      assert.equal(err.final, false);
      assert.equal(err.retryAfterMs, 1_000);
      assert.equal(info.retryAfterMs, 1_000);
      assert.ok(info.retryInMs >= 1_000 && info.retryInMs < 1_500, `waits Retry-After plus jitter, not the 100 ms backoff (${info.retryInMs} ms)`);
      assert.equal((await banner).enabled, false, "the call made meanwhile is served once the retry gets through");
      assert.equal(gate.upgrades(), 2);
    } finally {
      await conn.close();
      await gate.close();
    }
  });

  test("503 without Retry-After: the ordinary backoff", async () => {
    const gate = await overloadedGate(srv.url, 2, undefined);
    const ws = await makeWorkspace(t.db, { agents: ["main"] });
    const conn = connectAgent({ url: gate.url, token: ws.agents[0]!.authToken });
    const redials: RedialInfo[] = [];
    conn.on("disconnected", (_err: Error, info: RedialInfo) => redials.push(info));
    try {
      await conn.agent.getServiceBanner({});
      assert.equal(redials.length, 2);
      for (const info of redials) assert.equal(info.retryAfterMs, undefined);
      assert.ok(redials[0]!.retryInMs < 100 && redials[1]!.retryInMs < 200, "backoff from 100 ms, full jitter");
    } finally {
      await conn.close();
      await gate.close();
    }
  });
});
