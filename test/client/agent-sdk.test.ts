import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { backoffDelay, connectAgent, DialRefusedError } from "../../src/client/index.js";
import { makeBuild, makeWorkspace } from "../support/fixtures.js";
import { startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";

describe("backoff", () => {
  test("grows from 100 ms to a 10 s ceiling, with full jitter below it", () => {
    const top = () => 0.999_999;
    assert.equal(backoffDelay(0, undefined, top), 99);
    assert.equal(backoffDelay(3, undefined, top), 799);
    assert.equal(backoffDelay(7, undefined, top), 9_999);
    assert.equal(backoffDelay(50, undefined, top), 9_999);
    assert.equal(backoffDelay(5, undefined, () => 0), 0);
    const samples = Array.from({ length: 200 }, () => backoffDelay(6));
    assert.ok(samples.every((d) => d >= 0 && d < 6_400));
    assert.ok(new Set(samples).size > 50, "delays are spread, not in lockstep");
  });
});

describe("agent SDK against a real server", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer(t.db);
  });
  after(() => srv.close());

  for (const protocol of ["connect", "grpc"] as const) {
    test(`typed clients call through the tunnel with the ${protocol} protocol`, async () => {
      const ws = await makeWorkspace(t.db, { agents: ["main"] });
      const conn = connectAgent({ url: srv.url, token: ws.agents[0]!.authToken, protocol });
      try {
        const banners = await conn.agent.getAnnouncementBanners({});
        assert.deepEqual(banners.announcementBanners, []);
        assert.equal(conn.connected, true);
      } finally {
        await conn.close();
      }
    });
  }

  test("an unknown token stops the SDK with a 401 that says why, without retrying", async () => {
    const conn = connectAgent({ url: srv.url, token: randomUUID() });
    const fatal = new Promise<Error>((resolve) => conn.once("fatal", resolve));
    await assert.rejects(conn.agent.getServiceBanner({}), (err: unknown) => err instanceof DialRefusedError && err.status === 401 && /not authorized/.test(err.message));
    assert.ok((await fatal) instanceof DialRefusedError);
    await conn.close();
  });

  test("ready(signal) with a signal already aborted rejects at once as Canceled, the tunnel still down", { timeout: 10_000 }, async () => {
    // A server that never answers the dial: the tunnel stays down for as long as the test runs.
    const silent = createNetServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const conn = connectAgent({ url: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`, token: randomUUID() });
    try {
      await assert.rejects(conn.ready(AbortSignal.abort()), (err: unknown) => err instanceof ConnectError && err.code === Code.Canceled);
      assert.equal(conn.connected, false);
    } finally {
      await conn.close();
      silent.close();
    }
  });

  test("an agent of an outdated build stops with 403 build is outdated", async () => {
    const ws = await makeWorkspace(t.db, { agents: ["main"] });
    await makeBuild(t.db, ws.workspace, ws.owner.id, { agents: ["main"] });
    const conn = connectAgent({ url: srv.url, token: ws.agents[0]!.authToken });
    await assert.rejects(conn.ready(), (err: unknown) => err instanceof DialRefusedError && err.status === 403 && /build is outdated/.test(err.message));
    await conn.close();
  });

  test("when the server goes away the SDK dials again and the next call succeeds", async () => {
    const ws = await makeWorkspace(t.db, { agents: ["main"] });
    const first = await startTestServer(t.db);
    const port = first.server.address.port;
    const conn = connectAgent({ url: first.url, token: ws.agents[0]!.authToken, backoff: { initialMs: 10, maxMs: 50 } });
    try {
      await conn.ready();
      const disconnected = new Promise((resolve) => conn.once("disconnected", resolve));
      await first.close();
      await disconnected;
      const second = await startTestServer(t.db, { listen: { host: "127.0.0.1", port } });
      try {
        const reconnected = new Promise((resolve) => conn.once("connected", resolve));
        // A call made while the tunnel is down waits for the next one instead of failing.
        const call = conn.agent.getServiceBanner({});
        await reconnected;
        assert.equal((await call).enabled, false);
      } finally {
        await conn.close();
        await second.close();
      }
    } finally {
      await conn.close();
    }
  });
});
