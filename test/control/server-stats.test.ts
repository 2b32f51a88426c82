import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { createControlClient, type ControlClient } from "../../src/cli/control-client.js";
import { connectAgent } from "../../src/client/index.js";
import { metricsStatsSource, ServerStatsSampler, STATS_HISTORY_MS, STATS_SAMPLE_INTERVAL_MS } from "../../src/control/server-stats.js";
import { silentLogger } from "../../src/log.js";
import { ServerMetrics } from "../../src/server/metrics.js";
import { eventually, startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { connectErrorOf } from "../support/connect-error.js";

const ADMIN_TOKEN = "test-admin-token";

describe("ServerStatsSampler", () => {
  test("keeps only the history's worth of samples, dropping the oldest first", async () => {
    const sampler = new ServerStatsSampler({ source: metricsStatsSource(new ServerMetrics()), replicaId: "r", logger: silentLogger(), intervalMs: 10, historyMs: 30 });
    try {
      // The first sample's own time, not startedAt: a millisecond can pass between the two.
      const firstAt = timestampDate((await sampler.snapshot()).samples[0]!.at!).getTime();
      const snap = await eventually(async () => {
        const s = await sampler.snapshot();
        return timestampDate(s.samples[0]!.at!).getTime() > firstAt ? s : undefined;
      }, 10_000, "the first sample dropped");
      assert.equal(snap.samples.length, 3);
    } finally {
      await sampler.close();
    }
  });

  test("reports connected agents, RPC and error totals, and rates since the sample before", async () => {
    const metrics = new ServerMetrics();
    const sampler = new ServerStatsSampler({ source: metricsStatsSource(metrics), replicaId: "r", logger: silentLogger(), intervalMs: 10 });
    try {
      metrics.connectedAgents.inc(2);
      metrics.rpcs.inc({ method: "GetManifest", code: "ok" }, 10);
      metrics.rpcs.inc({ method: "GetManifest", code: "unauthenticated" }, 5);
      const busy = await eventually(async () => (await sampler.snapshot()).samples.find((s) => s.rpcsTotal === 15n), 10_000, "a sample with the RPCs");
      assert.deepEqual([busy.connectedAgents, busy.rpcErrorsTotal], [2, 5n]);
      assert.ok(busy.rpcRate > 0 && busy.rpcErrorRate > 0 && busy.rpcRate > busy.rpcErrorRate);
      const quiet = await eventually(async () => {
        const { samples } = await sampler.snapshot();
        return samples.at(-1)?.rpcsTotal === 15n && samples.at(-2)?.rpcsTotal === 15n ? samples.at(-1) : undefined;
      }, 10_000, "a sample after a quiet interval");
      assert.deepEqual([quiet.rpcRate, quiet.rpcErrorRate], [0, 0]);
    } finally {
      await sampler.close();
    }
  });
});

describe("GetServerStats", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  let control: ControlClient;
  before(async () => {
    srv = await startTestServer(t.db, { adminToken: ADMIN_TOKEN });
    control = createControlClient({ url: srv.url, adminToken: ADMIN_TOKEN });
  });
  after(async () => {
    await srv.close();
  });

  test("gives this replica, the sample taken at start and the figures now, counting a connected agent and the calls made", async () => {
    const created = await control.createWorkspace({ owner: `u-${randomUUID().slice(0, 8)}`, name: "dev", spec: { agents: [{ name: "main" }] } });
    const conn = connectAgent({ url: srv.url, token: created.agents[0]!.token });
    try {
      await conn.agent.getManifest({});
      const stats = await control.getServerStats({});
      assert.deepEqual(
        [stats.replicaId, stats.sampleIntervalSeconds, stats.samples[0]?.connectedAgents, stats.current?.connectedAgents],
        [srv.server.replicaId, STATS_SAMPLE_INTERVAL_MS / 1000, 0, 1],
      );
      assert.ok(stats.samples.length <= STATS_HISTORY_MS / STATS_SAMPLE_INTERVAL_MS);
      // CreateWorkspace and GetManifest ended before this call.
      assert.ok(stats.current!.rpcsTotal >= 2n, `rpcs_total ${stats.current!.rpcsTotal}`);
    } finally {
      await conn.close();
    }
  });

  test("with a wrong admin token is Unauthenticated", async () => {
    const err = await connectErrorOf(createControlClient({ url: srv.url, adminToken: "wrong" }).getServerStats({}));
    assert.equal(err.code, Code.Unauthenticated);
  });
});
