import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { connectAgent } from "../../src/client/index.js";
import { AppHealth, Log_Level } from "../../gen/coder/agent/v2/agent_pb.js";
import { openMigratedDatabase } from "../../src/cli/database-options.js";
import { workspaceOwnerChannel, type WorkspaceEvent } from "../../src/db/events.js";
import { getAgentById } from "../../src/db/queries/agents.js";
import { listAppsByAgentId } from "../../src/db/queries/apps.js";
import { listLatestLogs } from "../../src/db/queries/logs.js";
import { createWorkspace } from "../../src/provision/provision.js";
import { parseWorkspaceSpec } from "../../src/provision/spec.js";
import { makeWorkspace } from "../support/fixtures.js";
import { startTestServer, useTestDatabase } from "../support/agent-server.js";
import { recordEvents } from "../support/events.js";

describe("the agent endpoint on embedded PGlite", () => {
  const t = useTestDatabase("pglite");

  test("an agent connects, calls, and disconnects with its times recorded", async () => {
    const srv = await startTestServer(t.db, { agentUpdateIntervalMs: 100, agentInactiveTimeoutMs: 400 });
    const ws = await makeWorkspace(t.db, { agents: ["main"] });
    const agentId = ws.agents[0]!.id;
    const events = await recordEvents<WorkspaceEvent>(t.db.pubsub, workspaceOwnerChannel(ws.owner.id));
    const connectionUpdate = (e: WorkspaceEvent) => e.kind === "agt_connection_update" && e.agent_id === agentId;
    const conn = connectAgent({ url: srv.url, token: ws.agents[0]!.authToken });
    try {
      assert.equal((await conn.agent.getServiceBanner({})).enabled, false);
      await events.next(connectionUpdate);
      assert.ok((await getAgentById(t.db, agentId))?.lastConnectedAt instanceof Date);
    } finally {
      await conn.close();
    }
    await events.next(connectionUpdate);
    assert.ok((await getAgentById(t.db, agentId))?.disconnectedAt instanceof Date, "disconnected_at is written before the event");
    events.stop();
    await srv.close();
  });
});

describe("the agent endpoint on a PGlite folder the server migrated itself", () => {
  // No template copy: the folder starts empty and is migrated by the same process that then serves,
  // as `agentgate serve` does on a newcomer's first start. Enum arrays (log levels, app healths)
  // created by that migration must work at once, without a restart.
  test("logs and app health from the first agent are stored", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "agentgate-empty-"));
    const { db, applied } = await openMigratedDatabase({ "data-dir": dataDir });
    const srv = await startTestServer(db);
    try {
      assert.ok(applied.length > 0, "the folder started unmigrated");
      const created = await createWorkspace(db, {
        owner: "newcomer",
        name: "dev",
        spec: parseWorkspaceSpec({ agents: [{ name: "main", apps: [{ slug: "web", url: "http://127.0.0.1:1", healthcheck: { url: "http://127.0.0.1:1/", interval_seconds: 1, threshold: 1 } }] }] }),
      });
      const conn = connectAgent({ url: srv.url, token: created.agents[0]!.token });
      try {
        const manifest = await conn.agent.getManifest({});
        await conn.agent.batchCreateLogs({
          logSourceId: new Uint8Array(16),
          logs: [{ output: "hello", level: Log_Level.INFO }, { output: "careful", level: Log_Level.WARN }],
        });
        await conn.agent.batchUpdateAppHealths({ updates: [{ id: manifest.apps[0]!.id, health: AppHealth.HEALTHY }] });
      } finally {
        await conn.close();
      }
      const logs = await listLatestLogs(db, { agentId: created.agents[0]!.id, limit: 10 });
      assert.deepEqual(logs.map((l) => [l.output, l.level]).sort(), [["careful", "warn"], ["hello", "info"]]);
      const apps = await listAppsByAgentId(db, created.agents[0]!.id);
      assert.equal(apps[0]!.health, "healthy");
    } finally {
      await srv.close();
      await db.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
