/**
 * WorkspaceUpdates for one owner against a real server on both engines: the snapshot first,
 * then what a new build, a deletion and an agent's connection change, driven by the events the
 * server publishes.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Workspace_Status, type WorkspaceUpdate } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { uuidFromBytes } from "../../src/agentapi/uuid-bytes.js";
import { createControlClient, type ControlClient } from "../../src/cli/control-client.js";
import { connectAgent } from "../../src/client/index.js";
import { insertAgent } from "../../src/db/queries/agents.js";
import { workspaceUpdates } from "../../src/tailnet/workspace-updates.js";
import { startTestServer, type TestServer } from "../support/agent-server.js";
import { forEachEngine } from "../support/database.js";

const ADMIN_TOKEN = "test-admin-token";
const WAIT_MS = 10_000;

/** An update stream a test reads one update at a time, each within a bound. */
function open(stream: AsyncGenerator<WorkspaceUpdate>) {
  return {
    async next(): Promise<WorkspaceUpdate> {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("no workspace update in time")), WAIT_MS)));
      try {
        const r = await Promise.race([stream.next(), timeout]);
        assert.equal(r.done, false);
        return r.value as WorkspaceUpdate;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

const ids = (list: { id: Uint8Array }[]) => list.map((x) => uuidFromBytes(x.id, "id")).sort();

forEachEngine((t) => {
  let srv: TestServer;
  let control: ControlClient;
  const abort = new AbortController();
  before(async () => {
    srv = await startTestServer(t.db, { adminToken: ADMIN_TOKEN });
    control = createControlClient({ url: srv.url, adminToken: ADMIN_TOKEN });
  });
  after(async () => {
    abort.abort();
    await srv.close();
  });

  async function ownerWithWorkspace() {
    const owner = `u-${randomUUID().slice(0, 8)}`;
    const ws = await control.createWorkspace({ owner, name: "dev", spec: { agents: [{ name: "main" }] } });
    const { rows } = await t.db.query<{ id: string }>("SELECT id FROM users WHERE username = $1", [owner]);
    return { owner, ownerId: rows[0]!.id, ws };
  }

  test("the owner's workspaces and agents now, then a new build's agents replace the old ones", async () => {
    const { owner, ownerId, ws } = await ownerWithWorkspace();
    const updates = open(workspaceUpdates({ db: t.db }, ownerId, abort.signal));
    const first = await updates.next();
    assert.deepEqual(first.upsertedWorkspaces.map((w) => [uuidFromBytes(w.id, "id"), w.name, w.status]), [[ws.workspaceId, "dev", Workspace_Status.RUNNING]]);
    assert.deepEqual(ids(first.upsertedAgents), [ws.agents[0]!.id]);
    assert.equal(uuidFromBytes(first.upsertedAgents[0]!.workspaceId, "id"), ws.workspaceId);
    assert.deepEqual([first.deletedWorkspaces, first.deletedAgents], [[], []]);

    const second = await control.createWorkspace({ owner, name: "ci", spec: { agents: [{ name: "a" }] } });
    const added = await updates.next();
    assert.deepEqual(ids(added.upsertedWorkspaces), [second.workspaceId]);
    assert.deepEqual(ids(added.upsertedAgents), [second.agents[0]!.id]);

    const rebuilt = await control.buildWorkspace({ workspace: ws.workspaceId, spec: { agents: [{ name: "main" }, { name: "gpu" }] } });
    const build = await updates.next();
    assert.deepEqual(ids(build.upsertedAgents), rebuilt.agents.map((a) => a.id).sort());
    assert.deepEqual(ids(build.deletedAgents), [ws.agents[0]!.id]);
    assert.deepEqual(build.upsertedWorkspaces, [], "the workspace itself did not change");
  });

  test("a deleted workspace goes with its agents", async () => {
    const { ownerId, ws } = await ownerWithWorkspace();
    const updates = open(workspaceUpdates({ db: t.db }, ownerId, abort.signal));
    await updates.next();
    await control.deleteWorkspace({ workspace: ws.workspaceId });
    const gone = await updates.next();
    assert.deepEqual(ids(gone.deletedWorkspaces), [ws.workspaceId]);
    assert.deepEqual(ids(gone.deletedAgents), [ws.agents[0]!.id]);
    assert.deepEqual([gone.upsertedWorkspaces, gone.upsertedAgents], [[], []]);
  });

  test("an agent's connection change re-reads: an agent added without an event of its own shows up then", async () => {
    const { ownerId, ws } = await ownerWithWorkspace();
    const updates = open(workspaceUpdates({ db: t.db }, ownerId, abort.signal));
    await updates.next();
    const { rows } = await t.db.query<{ resourceId: string }>("SELECT resource_id AS \"resourceId\" FROM workspace_agents WHERE id = $1", [ws.agents[0]!.id]);
    const quiet = await insertAgent(t.db, {
      id: randomUUID(), resourceId: rows[0]!.resourceId, name: "quiet", authToken: randomUUID(), architecture: "amd64", operatingSystem: "linux", now: new Date(),
    });
    const conn = connectAgent({ url: srv.url, token: ws.agents[0]!.token });
    try {
      await conn.ready();
      const seen = await updates.next();
      assert.deepEqual(ids(seen.upsertedAgents), [quiet.id]);
    } finally {
      await conn.close();
    }
  });
});
