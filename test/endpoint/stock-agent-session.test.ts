/**
 * A stock Coder agent's session, over DRPC through the real tunnel at the version the server
 * offers: every startup routine at once for AGENTGATE_STOCK_SESSION_MS (default 30 s), on each
 * database engine. A Coder agent redials on the first failing routine, so none may fail.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { provisionAgent } from "../agentapi/support.js";
import { startTestServer, type TestServer } from "../support/agent-server.js";
import { forEachEngine } from "../support/database.js";
import { dialRawTunnel } from "../support/raw-tunnel.js";
import { runStockAgentSession } from "../support/stock-agent-session.js";

const DURATION_MS = Number(process.env.AGENTGATE_STOCK_SESSION_MS ?? 30_000);

forEachEngine((t) => {
  let srv: TestServer;
  before(async () => (srv = await startTestServer(t.db)));
  after(() => srv.close());

  test(`every routine of a stock agent runs for ${DURATION_MS} ms at the offered version with none failing`, { timeout: DURATION_MS + 60_000 }, async (ctx) => {
    const a = await provisionAgent(t.db, {
      apps: [{ slug: "web", url: "http://127.0.0.1:1", healthcheck: { url: "http://127.0.0.1:1/", interval_seconds: 5, threshold: 2 } }],
      scripts: [{ display_name: "Hello", script: "echo hello", run_on_start: true, timeout_seconds: 30 }],
      metadata: [{ key: "load", display_name: "Load", script: "true", interval_seconds: 5, timeout_seconds: 1 }],
      resource_monitors: { memory: { enabled: true, threshold: 80 }, volumes: [{ path: "/home", enabled: true, threshold: 90 }] },
    });
    assert.equal(srv.server.apiVersion, "2.13");
    const tunnel = await dialRawTunnel(srv.url, a.token, { version: srv.server.apiVersion });
    try {
      const report = await runStockAgentSession(tunnel.session, { durationMs: DURATION_MS, agentId: a.agentId });
      ctx.diagnostic(`calls: ${JSON.stringify(report.calls)}`);
      assert.deepEqual(report.failures, []);
      for (const [routine, calls] of Object.entries(report.calls)) assert.ok(calls > 0, `${routine} made no call`);
      // The tunnel is still the one it dialled: no routine's failure closed it.
      assert.equal(tunnel.ws.readyState, tunnel.ws.OPEN);
    } finally {
      tunnel.ws.close();
      tunnel.session.destroy();
    }
  });
});
