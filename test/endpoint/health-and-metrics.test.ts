import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { connectAgent } from "../../src/client/index.js";
import { makeWorkspace } from "../support/fixtures.js";
import { rawGet } from "../support/http.js";
import { primaryEngine, startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { createTestDatabase } from "../support/database.js";

describe("health, readiness and metrics routes", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer(t.db);
  });
  after(() => srv.close());

  test("/healthz and /readyz answer 200 on a migrated database", async () => {
    assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${srv.url}/readyz`)).status, 200);
  });

  test("/metrics exports tunnels, upgrades by result and status, RPCs by service, method and code, latency, batchers", async () => {
    const ws = await makeWorkspace(t.db, { agents: ["main"] });
    await rawGet(`${srv.url}/api/v2/workspaceagents/me/rpc`, { "Coder-Session-Token": randomUUID() });
    const conn = connectAgent({ url: srv.url, token: ws.agents[0]!.authToken });
    try {
      await conn.agent.getServiceBanner({});
      const res = await fetch(`${srv.url}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /text\/plain/);
      const text = await res.text();
      assert.match(text, /^agentgate_agents_connected 1$/m);
      assert.match(text, /^agentgate_agent_upgrades_total\{result="upgraded",status="101"\} 1$/m);
      assert.match(text, /^agentgate_agent_upgrades_total\{result="refused",status="401"\} 1$/m);
      assert.match(text, /^agentgate_rpcs_total\{service="coder\.agent\.v2\.Agent",method="GetServiceBanner",code="ok"\} 1$/m);
      assert.match(text, /^agentgate_rpc_duration_seconds_count\{method="GetServiceBanner"\} 1$/m);
      for (const batcher of ["heartbeats", "stats", "metadata", "usage"]) {
        assert.match(text, new RegExp(`^agentgate_batcher_queue_depth\\{batcher="${batcher}"\\} \\d+$`, "m"));
        for (const reason of ["queue_full", "group_full", "retries_exhausted"]) {
          assert.match(text, new RegExp(`^agentgate_batcher_dropped_total\\{batcher="${batcher}",reason="${reason}"\\} 0$`, "m"));
        }
        assert.match(text, new RegExp(`^agentgate_batcher_flush_errors_total\\{batcher="${batcher}"\\} 0$`, "m"));
      }
      assert.match(text, /^# TYPE agentgate_batcher_dropped_total counter$/m);
      assert.match(text, /^agentgate_pubsub_errors_total 0$/m);
      assert.match(text, /^# TYPE agentgate_agent_ping_timeouts_total counter$/m);
      assert.match(text, /^# TYPE agentgate_agent_evictions_total counter$/m);
    } finally {
      await conn.close();
    }
  });
});

describe("readiness on a database that is not migrated", () => {
  test("/readyz answers 503 naming the pending migrations while /healthz answers 200", async () => {
    const tdb = await createTestDatabase(primaryEngine(), { migrated: false });
    try {
      const srv = await startTestServer(await tdb.open());
      try {
        assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
        const res = await fetch(`${srv.url}/readyz`);
        assert.equal(res.status, 503);
        assert.match(((await res.json()) as { detail: string }).detail, /migrations not applied: 0001_init/);
      } finally {
        await srv.close();
      }
    } finally {
      await tdb.destroy();
    }
  });
});
