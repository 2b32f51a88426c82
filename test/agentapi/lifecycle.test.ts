import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { AppHealth, Lifecycle_State, Startup_Subsystem } from "../../gen/coder/agent/v2/agent_pb.js";
import { workspaceOwnerChannel, type WorkspaceEvent } from "../../src/db/events.js";
import { startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { recordEvents } from "../support/events.js";
import { provisionAgent, rejectsWith, row, uuidBytes, withTunnel } from "./support.js";

interface LifecycleRow {
  lifecycle_state: string;
  started_at: Date | null;
  ready_at: Date | null;
}

describe("UpdateLifecycle", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  before(async () => (srv = await startTestServer(t.db)));
  after(() => srv.close());
  const lifecycleRow = (id: string) => row<LifecycleRow>(t.db, "SELECT lifecycle_state, started_at, ready_at FROM workspace_agents WHERE id = $1", [id]);

  test("STARTING sets started_at and clears ready_at; READY sets ready_at; each publishes agt_lifecycle_update", async () => {
    const a = await provisionAgent(t.db);
    const events = await recordEvents<WorkspaceEvent>(t.db.pubsub, workspaceOwnerChannel(a.ownerId));
    try {
      const started = new Date("2030-01-01T00:00:00Z");
      const ready = new Date("2030-01-01T00:01:00Z");
      await withTunnel(srv.url, a.token, async (tun) => {
        await tun.agent.updateLifecycle({ lifecycle: { state: Lifecycle_State.STARTING, changedAt: timestampFromDate(started) } });
        assert.deepEqual(await lifecycleRow(a.agentId), { lifecycle_state: "starting", started_at: started, ready_at: null });
        await events.next((e) => e.kind === "agt_lifecycle_update");
        await tun.agent.updateLifecycle({ lifecycle: { state: Lifecycle_State.READY, changedAt: timestampFromDate(ready) } });
        assert.deepEqual(await lifecycleRow(a.agentId), { lifecycle_state: "ready", started_at: started, ready_at: ready });
        const e = await events.next((e) => e.kind === "agt_lifecycle_update");
        assert.deepEqual(e, { kind: "agt_lifecycle_update", workspace_id: a.workspaceId, agent_id: a.agentId });
        // A restart: STARTING again clears ready_at.
        await tun.agent.updateLifecycle({ lifecycle: { state: Lifecycle_State.STARTING, changedAt: timestampFromDate(ready) } });
        assert.deepEqual(await lifecycleRow(a.agentId), { lifecycle_state: "starting", started_at: ready, ready_at: null });
      });
    } finally {
      events.stop();
    }
  });

  for (const state of [Lifecycle_State.START_TIMEOUT, Lifecycle_State.START_ERROR]) {
    test(`${Lifecycle_State[state]} sets ready_at, and started_at when it was null`, async () => {
      const a = await provisionAgent(t.db);
      const at = new Date("2030-02-02T00:00:00Z");
      await withTunnel(srv.url, a.token, (tun) => tun.agent.updateLifecycle({ lifecycle: { state, changedAt: timestampFromDate(at) } }));
      const r = await lifecycleRow(a.agentId);
      assert.deepEqual([r.started_at, r.ready_at], [at, at]);
    });
  }

  test("SHUTTING_DOWN leaves started_at and ready_at alone", async () => {
    const a = await provisionAgent(t.db);
    const at = new Date("2030-03-03T00:00:00Z");
    await withTunnel(srv.url, a.token, async (tun) => {
      await tun.agent.updateLifecycle({ lifecycle: { state: Lifecycle_State.READY, changedAt: timestampFromDate(at) } });
      await tun.agent.updateLifecycle({ lifecycle: { state: Lifecycle_State.SHUTTING_DOWN, changedAt: timestampFromDate(new Date()) } });
    });
    assert.deepEqual(await lifecycleRow(a.agentId), { lifecycle_state: "shutting_down", started_at: at, ready_at: at });
  });

  test("a zero changed_at is replaced by server time, in the database and the response", async () => {
    const a = await provisionAgent(t.db);
    const before = Date.now();
    const res = await withTunnel(srv.url, a.token, (tun) =>
      tun.agent.updateLifecycle({ lifecycle: { state: Lifecycle_State.READY, changedAt: { seconds: -62_135_596_800n, nanos: 0 } } }),
    );
    const answered = timestampDate(res.changedAt!).getTime();
    assert.ok(answered >= before - 1000 && answered <= Date.now() + 1000, "server time in the response");
    assert.equal((await lifecycleRow(a.agentId)).ready_at?.getTime(), answered);
  });

  test("an unspecified state is InvalidArgument; nothing is written and nothing published", async () => {
    const a = await provisionAgent(t.db);
    const events = await recordEvents<WorkspaceEvent>(t.db.pubsub, workspaceOwnerChannel(a.ownerId));
    try {
      await withTunnel(srv.url, a.token, async (tun) => {
        await rejectsWith(tun.agent.updateLifecycle({ lifecycle: { state: Lifecycle_State.STATE_UNSPECIFIED } }), Code.InvalidArgument, "unknown lifecycle state");
        assert.equal((await lifecycleRow(a.agentId)).lifecycle_state, "created");
        // A later good call's event is the first one on the channel.
        await tun.agent.updateLifecycle({ lifecycle: { state: Lifecycle_State.STARTING } });
        await events.next((e) => e.kind === "agt_lifecycle_update");
        assert.equal(events.events.filter((e) => e.kind === "agt_lifecycle_update").length, 0);
      });
    } finally {
      events.stop();
    }
  });
});

describe("BatchUpdateAppHealths", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  before(async () => (srv = await startTestServer(t.db)));
  after(() => srv.close());
  const spec = {
    apps: [
      { slug: "web", url: "http://localhost:1", healthcheck: { url: "http://localhost:1/h", interval_seconds: 1, threshold: 1 } },
      { slug: "api", url: "http://localhost:2", healthcheck: { url: "http://localhost:2/h", interval_seconds: 1, threshold: 1 } },
      { slug: "plain", url: "http://localhost:3" },
    ],
  };
  const appIds = async (agentId: string) => {
    const { rows } = await t.db.query<{ slug: string; id: string; health: string }>("SELECT slug, id, health FROM workspace_apps WHERE agent_id = $1", [agentId]);
    return Object.fromEntries(rows.map((r) => [r.slug, r]));
  };

  test("a change is written and publishes app_health once; an unchanged value publishes nothing", async () => {
    const a = await provisionAgent(t.db, spec);
    const apps = await appIds(a.agentId);
    const events = await recordEvents<WorkspaceEvent>(t.db.pubsub, workspaceOwnerChannel(a.ownerId));
    try {
      await withTunnel(srv.url, a.token, async (tun) => {
        await tun.agent.batchUpdateAppHealths({ updates: [] });
        await tun.agent.batchUpdateAppHealths({ updates: [{ id: uuidBytes(apps.web!.id), health: AppHealth.INITIALIZING }] });
        await tun.agent.batchUpdateAppHealths({ updates: [{ id: uuidBytes(apps.web!.id), health: AppHealth.HEALTHY }] });
        const e = await events.next((e) => e.kind === "app_health");
        assert.deepEqual(e, { kind: "app_health", workspace_id: a.workspaceId, agent_id: a.agentId });
        assert.equal(events.events.filter((e) => e.kind === "app_health").length, 0, "the unchanged INITIALIZING published nothing");
      });
      const after = await appIds(a.agentId);
      assert.deepEqual([after.web!.health, after.api!.health], ["healthy", "initializing"]);
    } finally {
      events.stop();
    }
  });

  test("the whole batch is validated before any write", async () => {
    const a = await provisionAgent(t.db, spec);
    const apps = await appIds(a.agentId);
    const good = { id: uuidBytes(apps.web!.id), health: AppHealth.HEALTHY };
    await withTunnel(srv.url, a.token, async (tun) => {
      await rejectsWith(tun.agent.batchUpdateAppHealths({ updates: [good, { id: new Uint8Array(3), health: AppHealth.HEALTHY }] }), Code.InvalidArgument, "parse workspace app ID");
      await rejectsWith(
        tun.agent.batchUpdateAppHealths({ updates: [good, { id: uuidBytes("11111111-2222-3333-4444-555555555555"), health: AppHealth.HEALTHY }] }),
        Code.NotFound,
        'workspace app ID "11111111-2222-3333-4444-555555555555" not found',
      );
      await rejectsWith(tun.agent.batchUpdateAppHealths({ updates: [good, { id: uuidBytes(apps.plain!.id), health: AppHealth.HEALTHY }] }), Code.FailedPrecondition, "does not have healthchecks enabled");
      await rejectsWith(tun.agent.batchUpdateAppHealths({ updates: [good, { id: uuidBytes(apps.api!.id), health: AppHealth.APP_HEALTH_UNSPECIFIED }] }), Code.InvalidArgument, "unknown health status");
    });
    assert.equal((await appIds(a.agentId)).web!.health, "initializing");
  });

  test("another agent's app is not found", async () => {
    const a = await provisionAgent(t.db, spec);
    const other = await provisionAgent(t.db, spec);
    const theirs = (await appIds(other.agentId)).web!.id;
    await withTunnel(srv.url, a.token, (tun) =>
      rejectsWith(tun.agent.batchUpdateAppHealths({ updates: [{ id: uuidBytes(theirs), health: AppHealth.HEALTHY }] }), Code.NotFound),
    );
  });
});

describe("UpdateStartup", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  before(async () => (srv = await startTestServer(t.db)));
  after(() => srv.close());
  const startupRow = (id: string) =>
    row<{ version: string; expanded_directory: string; subsystems: string[]; api_version: string }>(
      t.db, "SELECT version, expanded_directory, subsystems::text[] AS subsystems, api_version FROM workspace_agents WHERE id = $1", [id],
    );

  test("stores version, directory, subsystems deduplicated and sorted, and the negotiated API version", async () => {
    const a = await provisionAgent(t.db);
    const startup = {
      version: "v2.18.1-rc.1+abc",
      expandedDirectory: "/home/coder/project",
      subsystems: [Startup_Subsystem.EXECTRACE, Startup_Subsystem.ENVBUILDER, Startup_Subsystem.ENVBOX, Startup_Subsystem.EXECTRACE],
    };
    const res = await withTunnel(srv.url, a.token, (tun) => tun.agent.updateStartup({ startup }), { version: "2.5" });
    assert.equal(res.version, startup.version);
    assert.deepEqual(await startupRow(a.agentId), {
      version: "v2.18.1-rc.1+abc", expanded_directory: "/home/coder/project", subsystems: ["envbox", "envbuilder", "exectrace"], api_version: "2.5",
    });
  });

  test("a version without the leading v is InvalidArgument and nothing is written", async () => {
    const a = await provisionAgent(t.db);
    await withTunnel(srv.url, a.token, (tun) => rejectsWith(tun.agent.updateStartup({ startup: { version: "1.2.3" } }), Code.InvalidArgument, "invalid agent semver version"));
    assert.equal((await startupRow(a.agentId)).version, "");
  });

  test("an unspecified subsystem is InvalidArgument", async () => {
    const a = await provisionAgent(t.db);
    await withTunnel(srv.url, a.token, (tun) =>
      rejectsWith(tun.agent.updateStartup({ startup: { version: "v1.0.0", subsystems: [Startup_Subsystem.SUBSYSTEM_UNSPECIFIED] } }), Code.InvalidArgument, "invalid agent subsystem"),
    );
  });
});
