/**
 * What an authenticated but hostile agent can do to the data, each attack at a reduced scale
 * through a real tunnel, on both engines: floods of rows (empty log lines, long repeated fields),
 * ids of other tenants (scripts, log sources, sub-agents), a flood of the shared metadata queue
 * while the database fails, and a crash emptying the unlogged tables.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { AppHealth, Timing_Stage, Timing_Status } from "../../gen/coder/agent/v2/agent_pb.js";
import {
  MAX_APP_HEALTH_UPDATES_PER_CALL,
  MAX_APPS_PER_SUB_AGENT,
  MAX_BOUNDARY_LOGS_PER_CALL,
  MAX_LOG_LINES_PER_BATCH,
  MAX_METADATA_ENTRIES_PER_CALL,
  MAX_RESOURCE_DATAPOINTS_PER_CALL,
  MAX_STATS_MAP_ENTRIES,
  MAX_SUB_AGENTS_PER_AGENT,
} from "../../src/agentapi/limits.js";
import { AGENT_METADATA_BATCH_CHANNEL, workspaceOwnerChannel, type WorkspaceEvent } from "../../src/db/events.js";
import { insertLogSources } from "../../src/db/queries/log-sources.js";
import { LOG_LINE_OVERHEAD_BYTES, MAX_LOGS_LENGTH } from "../../src/db/queries/logs.js";
import { listMetadata } from "../../src/db/queries/metadata.js";
import { eventually, startTestServer, type TestServer } from "../support/agent-server.js";
import { forEachEngine } from "../support/database.js";
import { recordEvents } from "../support/events.js";
import { provisionAgent, rejectsWith, row, uuidBytes, uuidString, withTunnel } from "./support.js";

const NIL_SOURCE = new Uint8Array(16);

forEachEngine((t) => {
  let srv: TestServer;
  before(async () => (srv = await startTestServer(t.db, { metadataFlushIntervalMs: 20 })));
  after(() => srv.close());
  const logCount = async (agentId: string) => (await row<{ n: number }>(t.db, "SELECT count(*)::int AS n FROM workspace_agent_logs WHERE agent_id = $1", [agentId])).n;
  const agentLogs = (id: string) => row<{ logs_length: number; logs_overflowed: boolean }>(t.db, "SELECT logs_length, logs_overflowed FROM workspace_agents WHERE id = $1", [id]);

  describe("logs", () => {
    test("empty lines count against the 1 MiB cap: a batch of more lines than the cap holds is refused whole, before any insert", async () => {
      const a = await provisionAgent(t.db);
      const ws = await recordEvents<WorkspaceEvent>(t.db.pubsub, workspaceOwnerChannel(a.ownerId));
      try {
        const res = await withTunnel(srv.url, a.token, (tun) =>
          tun.agent.batchCreateLogs({ logSourceId: NIL_SOURCE, logs: Array.from({ length: MAX_LOG_LINES_PER_BATCH + 1 }, () => ({ output: "" })) }),
        );
        assert.equal(res.logLimitExceeded, true);
        assert.deepEqual(await ws.next((e) => e.kind === "agt_logs_overflow"), { kind: "agt_logs_overflow", workspace_id: a.workspaceId, agent_id: a.agentId });
        assert.equal(await logCount(a.agentId), 0);
        assert.deepEqual(await agentLogs(a.agentId), { logs_length: 0, logs_overflowed: true });
      } finally {
        ws.stop();
      }
    });

    test("at the bound: as many empty lines as the cap holds are stored and fill it; one more line overflows", async () => {
      const a = await provisionAgent(t.db);
      assert.equal(MAX_LOG_LINES_PER_BATCH * LOG_LINE_OVERHEAD_BYTES, MAX_LOGS_LENGTH);
      await withTunnel(srv.url, a.token, async (tun) => {
        const full = await tun.agent.batchCreateLogs({ logSourceId: NIL_SOURCE, logs: Array.from({ length: MAX_LOG_LINES_PER_BATCH }, () => ({ output: "" })) });
        assert.equal(full.logLimitExceeded, false);
        assert.deepEqual(await agentLogs(a.agentId), { logs_length: MAX_LOGS_LENGTH, logs_overflowed: false });
        assert.equal((await tun.agent.batchCreateLogs({ logSourceId: NIL_SOURCE, logs: [{ output: "" }] })).logLimitExceeded, true);
      });
      assert.equal(await logCount(a.agentId), MAX_LOG_LINES_PER_BATCH);
      assert.equal((await agentLogs(a.agentId)).logs_overflowed, true);
    });

    test("another agent's log source id is NotFound, as an unknown one, and stores nothing", async () => {
      const a = await provisionAgent(t.db);
      const b = await provisionAgent(t.db, { scripts: [{ display_name: "s", script: "true" }] });
      const theirs = (await row<{ log_source_id: string }>(t.db, "SELECT log_source_id FROM workspace_agent_scripts WHERE workspace_agent_id = $1", [b.agentId])).log_source_id;
      await withTunnel(srv.url, a.token, async (tun) => {
        await rejectsWith(tun.agent.batchCreateLogs({ logSourceId: uuidBytes(theirs), logs: [{ output: "into b's source" }] }), Code.NotFound, `log source ${theirs} not found`);
        const unknown = randomUUID();
        await rejectsWith(tun.agent.batchCreateLogs({ logSourceId: uuidBytes(unknown), logs: [{ output: "x" }] }), Code.NotFound, `log source ${unknown} not found`);
      });
      assert.equal(await logCount(a.agentId), 0);
      assert.equal((await agentLogs(a.agentId)).logs_length, 0);
      // Its own sources still take lines.
      const mine = randomUUID();
      await insertLogSources(t.db, { agentId: a.agentId, createdAt: new Date(), sources: [{ id: mine, displayName: "mine", icon: "" }] });
      await withTunnel(srv.url, a.token, (tun) => tun.agent.batchCreateLogs({ logSourceId: uuidBytes(mine), logs: [{ output: "ok" }] }));
      assert.equal(await logCount(a.agentId), 1);
    });
  });

  test("ScriptCompleted on another agent's script is NotFound, as an unknown id, and writes nothing", async () => {
    const victim = await provisionAgent(t.db, { scripts: [{ display_name: "s", script: "true", run_on_start: true }] });
    const attacker = await provisionAgent(t.db);
    const script = (await row<{ id: string }>(t.db, "SELECT id FROM workspace_agent_scripts WHERE workspace_agent_id = $1", [victim.agentId])).id;
    const timing = (scriptId: string) => ({
      timing: { scriptId: uuidBytes(scriptId), start: timestampFromDate(new Date()), end: timestampFromDate(new Date()), exitCode: 137, stage: Timing_Stage.START, status: Timing_Status.EXIT_FAILURE },
    });
    await withTunnel(srv.url, attacker.token, async (tun) => {
      await rejectsWith(tun.agent.scriptCompleted(timing(script)), Code.NotFound, `script ${script} not found`);
      const unknown = randomUUID();
      await rejectsWith(tun.agent.scriptCompleted(timing(unknown)), Code.NotFound, `script ${unknown} not found`);
    });
    assert.equal((await row<{ n: number }>(t.db, "SELECT count(*)::int AS n FROM workspace_agent_script_timings WHERE script_id = $1", [script])).n, 0);
    await withTunnel(srv.url, victim.token, (tun) => tun.agent.scriptCompleted(timing(script)));
    assert.equal((await row<{ n: number }>(t.db, "SELECT count(*)::int AS n FROM workspace_agent_script_timings WHERE script_id = $1", [script])).n, 1);
  });

  describe("sub-agents", () => {
    const create = (name: string, apps: { slug: string }[] = []) => ({ name, architecture: "amd64", operatingSystem: "linux", apps });

    test("another tenant's agent id is NotFound, as an unknown id, whether or not it is a sub-agent", async () => {
      const other = await provisionAgent(t.db);
      const otherChild = await withTunnel(srv.url, other.token, (tun) => tun.agent.createSubAgent(create("theirs")));
      const a = await provisionAgent(t.db);
      await withTunnel(srv.url, a.token, async (tun) => {
        for (const id of [otherChild.agent!.id, uuidBytes(other.agentId), uuidBytes(randomUUID())]) {
          await rejectsWith(tun.agent.createSubAgent({ id }), Code.NotFound, "not found");
        }
      });
    });

    test(`at most ${MAX_SUB_AGENTS_PER_AGENT} live sub-agents; a deleted one frees its place`, async () => {
      const a = await provisionAgent(t.db);
      await withTunnel(srv.url, a.token, async (tun) => {
        const made = [];
        for (let i = 0; i < MAX_SUB_AGENTS_PER_AGENT; i++) made.push(await tun.agent.createSubAgent(create(`dc-${i}`)));
        await rejectsWith(tun.agent.createSubAgent(create("one-too-many")), Code.ResourceExhausted, `at most ${MAX_SUB_AGENTS_PER_AGENT}`);
        await tun.agent.deleteSubAgent({ id: made[0]!.agent!.id });
        await tun.agent.createSubAgent(create("in-its-place"));
        assert.equal((await tun.agent.listSubAgents({})).agents.length, MAX_SUB_AGENTS_PER_AGENT);
      });
    });

    test("depth 1: a sub-agent can't create sub-agents", async () => {
      const a = await provisionAgent(t.db);
      const child = await withTunnel(srv.url, a.token, (tun) => tun.agent.createSubAgent(create("dc")));
      await withTunnel(srv.url, uuidString(child.agent!.authToken), (tun) => rejectsWith(tun.agent.createSubAgent(create("grandchild")), Code.PermissionDenied, "cannot create sub-agents"));
      const { n } = await row<{ n: number }>(t.db, "SELECT count(*)::int AS n FROM workspace_agents WHERE parent_id = $1", [uuidString(child.agent!.id)]);
      assert.equal(n, 0);
    });

    test(`at most ${MAX_APPS_PER_SUB_AGENT} apps: one more refuses the call before the sub-agent is made`, async () => {
      const a = await provisionAgent(t.db);
      const apps = (n: number) => Array.from({ length: n }, (_, i) => ({ slug: `app-${i}` }));
      await withTunnel(srv.url, a.token, async (tun) => {
        await rejectsWith(tun.agent.createSubAgent(create("crowded", apps(MAX_APPS_PER_SUB_AGENT + 1))), Code.ResourceExhausted, `at most ${MAX_APPS_PER_SUB_AGENT}`);
        assert.equal((await tun.agent.listSubAgents({})).agents.length, 0);
        const ok = await tun.agent.createSubAgent(create("full", apps(MAX_APPS_PER_SUB_AGENT)));
        assert.deepEqual(ok.appCreationErrors, []);
      });
    });
  });

  test("repeated fields: at the bound accepted, one past it ResourceExhausted", async () => {
    const a = await provisionAgent(t.db, { apps: [{ slug: "web", url: "http://localhost:1", healthcheck: { url: "http://localhost:1/h", interval_seconds: 5, threshold: 2 } }] });
    const appId = (await row<{ id: string }>(t.db, "SELECT id FROM workspace_apps WHERE agent_id = $1", [a.agentId])).id;
    await withTunnel(srv.url, a.token, async (tun) => {
      const entries = (n: number) => Array.from({ length: n }, () => ({ key: "", result: { value: "v" } }));
      await tun.agent.batchUpdateMetadata({ metadata: entries(MAX_METADATA_ENTRIES_PER_CALL) });
      await rejectsWith(tun.agent.batchUpdateMetadata({ metadata: entries(MAX_METADATA_ENTRIES_PER_CALL + 1) }), Code.ResourceExhausted, `at most ${MAX_METADATA_ENTRIES_PER_CALL}`);

      const healths = (n: number) => Array.from({ length: n }, () => ({ id: uuidBytes(appId), health: AppHealth.HEALTHY }));
      await tun.agent.batchUpdateAppHealths({ updates: healths(MAX_APP_HEALTH_UPDATES_PER_CALL) });
      await rejectsWith(tun.agent.batchUpdateAppHealths({ updates: healths(MAX_APP_HEALTH_UPDATES_PER_CALL + 1) }), Code.ResourceExhausted, `at most ${MAX_APP_HEALTH_UPDATES_PER_CALL}`);

      const map = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`p${i}`, 1n]));
      await tun.agent.updateStats({ stats: { connectionsByProto: map(MAX_STATS_MAP_ENTRIES), sessionCounts: map(MAX_STATS_MAP_ENTRIES) } });
      await rejectsWith(tun.agent.updateStats({ stats: { connectionsByProto: map(MAX_STATS_MAP_ENTRIES + 1) } }), Code.ResourceExhausted, "connections_by_proto");
      await rejectsWith(tun.agent.updateStats({ stats: { sessionCounts: map(MAX_STATS_MAP_ENTRIES + 1) } }), Code.ResourceExhausted, "session_counts");

      await tun.agent.pushResourcesMonitoringUsage({ datapoints: Array.from({ length: MAX_RESOURCE_DATAPOINTS_PER_CALL }, () => ({})) });
      await rejectsWith(
        tun.agent.pushResourcesMonitoringUsage({ datapoints: Array.from({ length: MAX_RESOURCE_DATAPOINTS_PER_CALL + 1 }, () => ({})) }),
        Code.ResourceExhausted, `at most ${MAX_RESOURCE_DATAPOINTS_PER_CALL}`,
      );

      await tun.agent.reportBoundaryLogs({ logs: Array.from({ length: MAX_BOUNDARY_LOGS_PER_CALL }, () => ({ allowed: true })) });
      await rejectsWith(tun.agent.reportBoundaryLogs({ logs: Array.from({ length: MAX_BOUNDARY_LOGS_PER_CALL + 1 }, () => ({ allowed: true })) }), Code.ResourceExhausted, `at most ${MAX_BOUNDARY_LOGS_PER_CALL}`);
    });
  });

  test("a stats count past 2^53 is refused (it would fail the shared batch of every agent's rows); the other agents' rows are written", async () => {
    const hostile = await provisionAgent(t.db);
    const honest = await provisionAgent(t.db);
    await withTunnel(srv.url, hostile.token, (tun) =>
      rejectsWith(tun.agent.updateStats({ stats: { rxBytes: 9_223_372_036_854_775_807n } }), Code.InvalidArgument, "stats.rx_bytes"),
    );
    await withTunnel(srv.url, honest.token, (tun) => tun.agent.updateStats({ stats: { rxBytes: 1234n } }));
    await eventually(async () => ((await t.db.query("SELECT 1 FROM workspace_agent_stats WHERE agent_id = $1 AND rx_bytes = 1234", [honest.agentId])).rows.length > 0 ? true : undefined), 10_000, "the honest agent's stats row");
    assert.equal((await row<{ n: number }>(t.db, "SELECT count(*)::int AS n FROM workspace_agent_stats WHERE agent_id = $1", [hostile.agentId])).n, 0);
  });

  test("metadata queue: one agent flooding it while the database fails can't push out another's results; the retried flush loses none of them", async () => {
    const victimKeys = Array.from({ length: 10 }, (_, i) => `v${i}`);
    const victim = await provisionAgent(t.db, { metadata: victimKeys.map((key) => ({ key, display_name: key, script: "true", interval_seconds: 10, timeout_seconds: 1 })) });
    const flooder = await provisionAgent(t.db);
    const flushed = await recordEvents<{ agent_ids: string[] }>(t.db.pubsub, AGENT_METADATA_BATCH_CHANNEL);
    const metric = async (pattern: RegExp) => Number(pattern.exec(await (await fetch(`${srv.url}/metrics`)).text())?.[1] ?? 0);
    const flushErrors = () => metric(/^agentgate_batcher_flush_errors_total\{batcher="metadata"\} (\d+)$/m);
    const dropped = (reason: string) => metric(new RegExp(`^agentgate_batcher_dropped_total\\{batcher="metadata",reason="${reason}"\\} (\\d+)$`, "m"));
    const errorsBefore = await flushErrors();
    const groupFullBefore = await dropped("group_full");
    const queueFullBefore = await dropped("queue_full");
    // A real write failure: the values table is gone until the flood is over.
    await t.db.query("ALTER TABLE workspace_agent_metadata RENAME TO workspace_agent_metadata_away");
    let restored = false;
    const restore = async () => {
      if (restored) return;
      restored = true;
      await t.db.query("ALTER TABLE workspace_agent_metadata_away RENAME TO workspace_agent_metadata");
    };
    try {
      await withTunnel(srv.url, victim.token, (tun) => tun.agent.batchUpdateMetadata({ metadata: [{ key: "v0", result: { value: "before" } }] }));
      await eventually(async () => ((await flushErrors()) > errorsBefore ? true : undefined), 10_000, "a failed metadata flush");
      // The flood: 20 calls of distinct keys (20 × the per-call bound), each answered OK.
      await withTunnel(srv.url, flooder.token, async (tun) => {
        for (let call = 0; call < 20; call++) {
          await tun.agent.batchUpdateMetadata({ metadata: Array.from({ length: MAX_METADATA_ENTRIES_PER_CALL }, (_, i) => ({ key: `k${call}-${i}`, result: { value: "x" } })) });
        }
      });
      await withTunnel(srv.url, victim.token, (tun) => tun.agent.batchUpdateMetadata({ metadata: victimKeys.map((key) => ({ key, result: { value: "after" } })) }));
      assert.ok((await dropped("group_full")) > groupFullBefore, "the flooder's surplus is refused");
      assert.equal(await dropped("queue_full"), queueFullBefore, "the queue itself never filled");
      await restore();
      // The retried flush in flight when the "after" values came holds only v0's "before": its
      // event can come first, so read after each of the victim's flushes until one has them all.
      const expected = victimKeys.map((k) => [k, "after"]);
      let values: string[][] = [];
      for (let flush = 0; flush < 3; flush++) {
        await flushed.next((e) => e.agent_ids.includes(victim.agentId));
        values = (await listMetadata(t.db, victim.agentId)).map((m) => [m.key, m.value]);
        if (values.every(([, v]) => v === "after")) break;
      }
      assert.deepEqual(values, expected);
      assert.equal(await dropped("retries_exhausted"), 0);
    } finally {
      await restore();
      flushed.stop();
    }
  });

  test("metadata descriptions survive a crash: they are in a logged table; values are unlogged and come back with the next report", async () => {
    const persistence = async (table: string) => (await row<{ p: string }>(t.db, "SELECT relpersistence::text AS p FROM pg_class WHERE relname = $1", [table])).p;
    assert.equal(await persistence("workspace_agent_metadata_descriptions"), "p", "permanent (logged)");
    assert.equal(await persistence("workspace_agent_metadata"), "u", "unlogged");
    const a = await provisionAgent(t.db, { metadata: [{ key: "load", display_name: "Load", script: "cat /proc/loadavg", interval_seconds: 10, timeout_seconds: 2 }] });
    const flushed = await recordEvents<{ agent_ids: string[] }>(t.db.pubsub, AGENT_METADATA_BATCH_CHANNEL);
    try {
      // What crash recovery does to every unlogged table: empties it.
      await t.db.query("TRUNCATE workspace_agent_metadata");
      const [after] = await listMetadata(t.db, a.agentId);
      assert.deepEqual([after?.key, after?.displayName, after?.script, after?.interval, after?.timeout, after?.value], ["load", "Load", "cat /proc/loadavg", 10, 2, ""]);
      await withTunnel(srv.url, a.token, async (tun) => {
        assert.deepEqual((await tun.agent.getManifest({})).metadata.map((m) => m.key), ["load"]);
        await tun.agent.batchUpdateMetadata({ metadata: [{ key: "load", result: { value: "0.5" } }] });
      });
      await flushed.next((e) => e.agent_ids.includes(a.agentId));
      assert.equal((await listMetadata(t.db, a.agentId))[0]?.value, "0.5");
    } finally {
      flushed.stop();
    }
  });
});
