import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { workspaceOwnerChannel, type WorkspaceEvent } from "../../src/db/events.js";
import { ZERO_TIME } from "../../src/db/enums.js";
import { getLatestStats } from "../../src/db/queries/stats.js";
import { eventually, startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { recordEvents } from "../support/events.js";
import { provisionAgent, row, withTunnel } from "./support.js";

const REPORT_INTERVAL_MS = 1_234;

describe("UpdateStats", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  before(async () => (srv = await startTestServer(t.db, { agentStatsIntervalMs: REPORT_INTERVAL_MS, usageFlushIntervalMs: 200 })));
  after(() => srv.close());
  const lastUsed = async (id: string) => (await row<{ last_used_at: Date }>(t.db, "SELECT last_used_at FROM workspaces WHERE id = $1", [id])).last_used_at;

  test("a call without stats only answers the report interval from --agent-stats-interval", async () => {
    const a = await provisionAgent(t.db);
    const res = await withTunnel(srv.url, a.token, (tun) => tun.agent.updateStats({}));
    assert.equal(durationMs(res.reportInterval!), REPORT_INTERVAL_MS);
    assert.equal(await getLatestStats(t.db, a.agentId), undefined);
  });

  test("a report with connections becomes a stats row, marks the workspace used and publishes stats_update", async () => {
    const a = await provisionAgent(t.db);
    const events = await recordEvents<WorkspaceEvent>(t.db.pubsub, workspaceOwnerChannel(a.ownerId));
    try {
      const before = Date.now();
      const res = await withTunnel(srv.url, a.token, (tun) =>
        tun.agent.updateStats({
          stats: {
            connectionsByProto: { ssh: 2n }, connectionCount: 2n, connectionMedianLatencyMs: 12.5,
            rxPackets: 1n, rxBytes: 2n, txPackets: 3n, txBytes: 4n, sessionCountSsh: 2n, sessionCounts: { ssh: 2n },
          },
        }),
      );
      assert.equal(durationMs(res.reportInterval!), REPORT_INTERVAL_MS);
      const e = await events.next((e) => e.kind === "stats_update");
      assert.deepEqual(e, { kind: "stats_update", workspace_id: a.workspaceId });
      const stats = await eventually(() => getLatestStats(t.db, a.agentId), 5_000, "stats row");
      assert.deepEqual(
        [stats.userId, stats.workspaceId, stats.connectionCount, stats.connectionsByProto, stats.connectionMedianLatencyMs, stats.rxPackets, stats.rxBytes, stats.txPackets, stats.txBytes, stats.sessionCountSsh, stats.sessionCounts, stats.usage],
        [a.ownerId, a.workspaceId, 2, { ssh: 2 }, 12.5, 1, 2, 3, 4, 2, { ssh: 2 }, false],
      );
      const used = await eventually(async () => ((await lastUsed(a.workspaceId)).getTime() > ZERO_TIME.getTime() ? lastUsed(a.workspaceId) : undefined), 5_000, "last_used_at");
      assert.ok(used.getTime() >= before - 1000);
    } finally {
      events.stop();
    }
  });

  test("a report with no connections is stored but neither marks the workspace used nor publishes", async () => {
    const a = await provisionAgent(t.db);
    const b = await provisionAgent(t.db);
    const events = await recordEvents<WorkspaceEvent>(t.db.pubsub, workspaceOwnerChannel(a.ownerId));
    try {
      await withTunnel(srv.url, a.token, (tun) => tun.agent.updateStats({ stats: { connectionCount: 0n, rxBytes: 7n } }));
      // b's busy report goes through the same tracker flush as anything a's report would have caused.
      await withTunnel(srv.url, b.token, (tun) => tun.agent.updateStats({ stats: { connectionCount: 1n } }));
      await eventually(async () => ((await lastUsed(b.workspaceId)).getTime() > ZERO_TIME.getTime() ? true : undefined), 5_000, "b used");
      assert.equal((await eventually(() => getLatestStats(t.db, a.agentId))).rxBytes, 7);
      assert.deepEqual(await lastUsed(a.workspaceId), ZERO_TIME);
      assert.equal(events.events.filter((e) => e.kind === "stats_update").length, 0);
    } finally {
      events.stop();
    }
  });
});
