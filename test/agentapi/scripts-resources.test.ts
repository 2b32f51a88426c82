import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { Lifecycle_State, Timing_Stage, Timing_Status } from "../../gen/coder/agent/v2/agent_pb.js";
import { workspaceOwnerChannel, type WorkspaceEvent } from "../../src/db/events.js";
import { startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { recordEvents } from "../support/events.js";
import { provisionAgent, rejectsWith, row, uuidBytes, withTunnel } from "./support.js";

describe("ScriptCompleted", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  before(async () => (srv = await startTestServer(t.db)));
  after(() => srv.close());

  test("records the run's times, exit code, stage and status", async () => {
    const a = await provisionAgent(t.db, { scripts: [{ display_name: "s", script: "exit 3", run_on_start: true }] });
    const script = await row<{ id: string }>(t.db, "SELECT id FROM workspace_agent_scripts WHERE workspace_agent_id = $1", [a.agentId]);
    const start = new Date("2030-01-01T00:00:00Z");
    const end = new Date("2030-01-01T00:00:05Z");
    await withTunnel(srv.url, a.token, (tun) =>
      tun.agent.scriptCompleted({
        timing: { scriptId: uuidBytes(script.id), start: timestampFromDate(start), end: timestampFromDate(end), exitCode: 3, stage: Timing_Stage.START, status: Timing_Status.EXIT_FAILURE },
      }),
    );
    const timing = await row(t.db, "SELECT started_at, ended_at, exit_code, stage::text, status::text FROM workspace_agent_script_timings WHERE script_id = $1", [script.id]);
    assert.deepEqual(timing, { started_at: start, ended_at: end, exit_code: 3, stage: "start", status: "exit_failure" });
  });

  test("a malformed script id is InvalidArgument; an unknown one is NotFound", async () => {
    const a = await provisionAgent(t.db);
    const times = { start: timestampFromDate(new Date()), end: timestampFromDate(new Date()) };
    await withTunnel(srv.url, a.token, async (tun) => {
      await rejectsWith(tun.agent.scriptCompleted({ timing: { scriptId: new Uint8Array(4), ...times } }), Code.InvalidArgument, "script id from bytes");
      await rejectsWith(tun.agent.scriptCompleted({ timing: { scriptId: uuidBytes("11111111-2222-4333-8444-555555555555"), ...times } }), Code.NotFound);
    });
  });
});

describe("resources monitoring", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  before(async () => (srv = await startTestServer(t.db)));
  after(() => srv.close());
  const monitors = { resource_monitors: { memory: { enabled: true, threshold: 80 }, volumes: [{ path: "/home", enabled: true, threshold: 90 }, { path: "/off", enabled: false, threshold: 90 }] } };
  const GiB = 1n << 30n;
  /** 20 datapoints: memory at `memPct` percent, /home at `volPct` percent. */
  const points = (memPct: bigint, volPct: bigint) =>
    Array.from({ length: 20 }, () => ({
      collectedAt: timestampFromDate(new Date()),
      memory: { used: (memPct * GiB) / 100n, total: GiB },
      volumes: [{ volume: "/home", used: volPct, total: 100n }],
    }));
  const states = async (agentId: string) => ({
    memory: (await row<{ state: string }>(t.db, "SELECT state::text FROM workspace_agent_memory_resource_monitors WHERE agent_id = $1", [agentId])).state,
    home: (await row<{ state: string }>(t.db, "SELECT state::text FROM workspace_agent_volume_resource_monitors WHERE agent_id = $1 AND path = '/home'", [agentId])).state,
  });

  test("the configuration lists the provisioned monitors with the fixed numbers", async () => {
    const a = await provisionAgent(t.db, monitors);
    const bare = await provisionAgent(t.db);
    const cfg = await withTunnel(srv.url, a.token, (tun) => tun.agent.getResourcesMonitoringConfiguration({}));
    assert.deepEqual([cfg.config?.numDatapoints, cfg.config?.collectionIntervalSeconds], [20, 10]);
    assert.equal(cfg.memory?.enabled, true);
    assert.deepEqual(cfg.volumes.map((v) => [v.path, v.enabled]), [["/home", true], ["/off", false]]);
    const none = await withTunnel(srv.url, bare.token, (tun) => tun.agent.getResourcesMonitoringConfiguration({}));
    assert.deepEqual([none.memory, none.volumes], [undefined, []]);
  });

  test("OK→NOK publishes agt_resources_alert and writes NOK; a second NOK within the debounce publishes nothing", async () => {
    const a = await provisionAgent(t.db, monitors);
    const events = await recordEvents<WorkspaceEvent>(t.db.pubsub, workspaceOwnerChannel(a.ownerId));
    try {
      await withTunnel(srv.url, a.token, async (tun) => {
        await tun.agent.pushResourcesMonitoringUsage({ datapoints: points(95n, 95n) });
        const alert = await events.next((e) => e.kind === "agt_resources_alert");
        assert.deepEqual(alert, { kind: "agt_resources_alert", workspace_id: a.workspaceId, agent_id: a.agentId });
        await events.next((e) => e.kind === "agt_resources_alert");
        assert.deepEqual(await states(a.agentId), { memory: "NOK", home: "NOK" });
        const debounced = await row<{ debounced_until: Date }>(t.db, "SELECT debounced_until FROM workspace_agent_memory_resource_monitors WHERE agent_id = $1", [a.agentId]);
        assert.ok(debounced.debounced_until.getTime() > Date.now() + 29 * 60_000, "debounced for 30 minutes");

        await tun.agent.pushResourcesMonitoringUsage({ datapoints: points(10n, 10n) });
        assert.deepEqual(await states(a.agentId), { memory: "OK", home: "OK" });
        await tun.agent.pushResourcesMonitoringUsage({ datapoints: points(95n, 95n) });
        assert.deepEqual(await states(a.agentId), { memory: "NOK", home: "NOK" });
        // A lifecycle event published after that push marks the end of what it could have sent.
        await tun.agent.updateLifecycle({ lifecycle: { state: Lifecycle_State.STARTING } });
        await events.next((e) => e.kind === "agt_lifecycle_update");
        assert.equal(events.events.filter((e) => e.kind === "agt_resources_alert").length, 0);
      });
    } finally {
      events.stop();
    }
  });

  test("NOK needs 50 % consecutive or 20 % overall: 3 of 20 over the threshold stays OK, 4 turn NOK", async () => {
    const a = await provisionAgent(t.db, { resource_monitors: { memory: { enabled: true, threshold: 80 } } });
    const mixed = (noks: number) => points(10n, 10n).map((p, i) => (i % 5 === 0 && i / 5 < noks ? { ...p, memory: { used: GiB, total: GiB } } : p));
    await withTunnel(srv.url, a.token, async (tun) => {
      await tun.agent.pushResourcesMonitoringUsage({ datapoints: mixed(3) });
      assert.equal((await row<{ state: string }>(t.db, "SELECT state::text FROM workspace_agent_memory_resource_monitors WHERE agent_id = $1", [a.agentId])).state, "OK");
      await tun.agent.pushResourcesMonitoringUsage({ datapoints: mixed(4) });
      assert.equal((await row<{ state: string }>(t.db, "SELECT state::text FROM workspace_agent_memory_resource_monitors WHERE agent_id = $1", [a.agentId])).state, "NOK");
    });
  });

  test("an enabled volume with no datapoints is InvalidArgument", async () => {
    const a = await provisionAgent(t.db, monitors);
    const noVolumes = points(10n, 10n).map((p) => ({ ...p, volumes: [] }));
    await withTunnel(srv.url, a.token, (tun) => rejectsWith(tun.agent.pushResourcesMonitoringUsage({ datapoints: noVolumes }), Code.InvalidArgument, "volume not found: /home"));
  });
});
