import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { it } from "node:test";
import type { Queryable } from "../../src/db/database.js";
import { isCheckViolation, isUniqueViolation } from "../../src/db/errors.js";
import { connectAgent, connectAgents, disconnectAgent, disconnectAgents, refreshAgentConnections } from "../../src/db/queries/agent-connections.js";
import { listAgentOverviews } from "../../src/db/queries/agent-overviews.js";
import { getTokenAgent } from "../../src/db/queries/agent-tokens.js";
import { getAgentById, insertAgent, updateAgentLifecycle, updateAgentStartup } from "../../src/db/queries/agents.js";
import { listSubAgents, softDeleteSubAgent } from "../../src/db/queries/sub-agents.js";
import { softDeleteWorkspace } from "../../src/db/queries/workspaces.js";
import { agentServerStore } from "../../src/server/agent-store.js";
import { eventually } from "../support/agent-server.js";
import { forEachEngine } from "../support/database.js";
import { makeBuild, makeWorkspace } from "../support/fixtures.js";
import { getAgentByToken, updateAgentConnection } from "../support/queries.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

forEachEngine((t) => {
  it("token lookup returns the agent, its build, the latest build, workspace and owner", async () => {
    const f = await makeWorkspace(t.db);
    const row = await getTokenAgent(t.db, f.agents[0]!.authToken);
    assert.ok(row);
    assert.equal(row.agentId, f.agents[0]!.id);
    assert.match(row.agentId, UUID);
    assert.equal(row.agentName, f.agents[0]!.name);
    assert.equal(row.buildId, f.build.id);
    assert.equal(row.buildNumber, 1);
    assert.equal(row.latestBuildId, f.build.id);
    assert.equal(row.workspaceId, f.workspace.id);
    assert.equal(row.workspaceName, f.workspace.name);
    assert.equal(row.ownerId, f.owner.id);
    assert.equal(row.ownerUsername, f.owner.username);
  });

  it("an agent row reads back with parsed types", async () => {
    const f = await makeWorkspace(t.db);
    const agent = await getAgentById(t.db, f.agents[0]!.id);
    assert.ok(agent);
    assert.ok(agent.createdAt instanceof Date);
    assert.equal(agent.connectionGeneration, 0);
    assert.deepEqual(agent.subsystems, []);
    assert.deepEqual(agent.displayApps, ["vscode", "vscode_insiders", "web_terminal", "ssh_helper", "port_forwarding_helper"]);
    assert.equal(agent.lifecycleState, "created");
  });

  it("token lookup of an agent of an outdated build names the newer latest build", async () => {
    const f = await makeWorkspace(t.db);
    const next = await makeBuild(t.db, f.workspace, f.owner.id);
    const row = await getAgentByToken(t.db, f.agents[0]!.authToken);
    assert.equal(row?.buildNumber, 1);
    assert.equal(row?.latestBuildNumber, 2);
    assert.equal(row?.latestBuildId, next.build.id);
  });

  it("token lookup finds nothing for a soft-deleted workspace", async () => {
    const f = await makeWorkspace(t.db);
    assert.equal(await softDeleteWorkspace(t.db, f.workspace.id, new Date()), true);
    assert.equal(await getAgentByToken(t.db, f.agents[0]!.authToken), undefined);
  });

  it("a soft-deleted sub-agent is found neither by token nor by id", async () => {
    const f = await makeWorkspace(t.db);
    const parent = f.agents[0]!;
    const sub = await insertAgent(t.db, {
      id: randomUUID(), resourceId: parent.resourceId, name: "sub", authToken: randomUUID(),
      architecture: "amd64", operatingSystem: "linux", parentId: parent.id, now: new Date(),
    });
    assert.deepEqual((await listSubAgents(t.db, parent.id)).map((a) => a.id), [sub.id]);
    assert.equal(await softDeleteSubAgent(t.db, { id: sub.id, parentId: parent.id, now: new Date() }), true);
    assert.equal(await getAgentByToken(t.db, sub.authToken), undefined);
    assert.equal(await getAgentById(t.db, sub.id), undefined);
  });

  it("two agents with one name in one build are refused", async () => {
    const f = await makeWorkspace(t.db, { agents: ["dev"] });
    await assert.rejects(
      insertAgent(t.db, {
        id: randomUUID(), resourceId: f.agents[0]!.resourceId, name: "dev", authToken: randomUUID(),
        architecture: "amd64", operatingSystem: "linux", now: new Date(),
      }),
      (err) => isUniqueViolation(err),
    );
  });

  it("the same agent name in the next build is allowed", async () => {
    const f = await makeWorkspace(t.db, { agents: ["dev"] });
    const next = await makeBuild(t.db, f.workspace, f.owner.id, { agents: ["dev"] });
    assert.equal(next.agents[0]!.name, "dev");
  });

  it("connectAgent keeps first_connected_at, keeps disconnected_at and bumps the generation", async () => {
    const f = await makeWorkspace(t.db);
    const id = f.agents[0]!.id;
    const replicaId = randomUUID();
    const t1 = new Date("2030-01-01T00:00:00Z");
    const c1 = await connectAgent(t.db, { id, replicaId, now: t1 });
    assert.deepEqual(c1, { connectionGeneration: 1, firstConnectedAt: t1, lastConnectedAt: t1, disconnectedAt: null });
    const t2 = new Date("2030-01-01T00:01:00Z");
    assert.equal(await disconnectAgent(t.db, { id, replicaId, generation: 1, disconnectedAt: t2 }), true);
    const t3 = new Date("2030-01-01T00:02:00Z");
    const c2 = await connectAgent(t.db, { id, replicaId, now: t3 });
    assert.deepEqual(c2, { connectionGeneration: 2, firstConnectedAt: t1, lastConnectedAt: t3, disconnectedAt: t2 });
  });

  it("a late disconnect of an older connection does not overwrite a newer connection", async () => {
    const f = await makeWorkspace(t.db);
    const id = f.agents[0]!.id;
    const replicaA = randomUUID();
    const replicaB = randomUUID();
    const old = await connectAgent(t.db, { id, replicaId: replicaA, now: new Date() });
    await connectAgent(t.db, { id, replicaId: replicaA, now: new Date() });
    assert.equal(await disconnectAgent(t.db, { id, replicaId: replicaA, generation: old!.connectionGeneration, disconnectedAt: new Date() }), false);
    const onB = await connectAgent(t.db, { id, replicaId: replicaB, now: new Date() });
    assert.equal(await disconnectAgent(t.db, { id, replicaId: replicaA, generation: onB!.connectionGeneration, disconnectedAt: new Date() }), false);
    assert.equal((await getAgentById(t.db, id))?.disconnectedAt, null);
  });

  it("the store groups many agents' lookups and connection writes, and gives connects of one agent at once each its own generation", async () => {
    const fs = await Promise.all(Array.from({ length: 5 }, () => makeWorkspace(t.db)));
    const store = agentServerStore(t.db, randomUUID());
    const found = await Promise.all([...fs.map((f) => store.lookupAgentByToken(f.agents[0]!.authToken)), store.lookupAgentByToken(randomUUID())]);
    assert.deepEqual(found.map((r) => r?.agentId), [...fs.map((f) => f.agents[0]!.id), undefined]);
    const id = fs[0]!.agents[0]!.id;
    const at = new Date();
    const connections = await Promise.all([store.connect(id, at), store.connect(id, at), store.connect(fs[1]!.agents[0]!.id, at)]);
    assert.deepEqual(connections.map((c) => c.connectionGeneration).sort(), [1, 1, 2]);
    const newest = connections.slice(0, 2).find((c) => c.connectionGeneration === 2)!;
    const older = connections.slice(0, 2).find((c) => c.connectionGeneration === 1)!;
    assert.deepEqual(await Promise.all([store.disconnect(id, older, at), store.disconnect(id, newest, at), store.disconnect(fs[1]!.agents[0]!.id, connections[2]!, at)]), [false, true, true]);
    await assert.rejects(store.connect(randomUUID(), at), /agent was deleted/);
  });

  it("updateAgentConnection writes the columns and respects the generation guard", async () => {
    const f = await makeWorkspace(t.db);
    const id = f.agents[0]!.id;
    const replicaId = randomUUID();
    const now = new Date("2031-05-05T05:05:05.123Z");
    const c = await connectAgent(t.db, { id, replicaId, now });
    const u = { id, firstConnectedAt: now, lastConnectedAt: now, disconnectedAt: now, replicaId, updatedAt: now };
    assert.equal(await updateAgentConnection(t.db, { ...u, generation: c!.connectionGeneration + 1 }), false);
    assert.equal(await updateAgentConnection(t.db, { ...u, generation: c!.connectionGeneration }), true);
    const a = await getAgentById(t.db, id);
    assert.deepEqual([a?.disconnectedAt, a?.lastConnectedReplicaId], [now, replicaId]);
  });

  it("refreshAgentConnections writes many agents in one statement, skipping stale generations", async () => {
    const f = await makeWorkspace(t.db, { agents: ["a", "b", "c"] });
    const replicaId = randomUUID();
    const connections = await Promise.all(f.agents.map((a) => connectAgent(t.db, { id: a.id, replicaId, now: new Date() })));
    const at = new Date("2032-02-02T02:02:02Z");
    const refreshes = f.agents.map((a, i) => ({
      agentId: a.id,
      connection: i === 2 ? { ...connections[i]!, connectionGeneration: 99 } : connections[i]!,
      at,
    }));
    const written = await refreshAgentConnections(t.db, replicaId, refreshes);
    assert.deepEqual(written.sort(), [f.agents[0]!.id, f.agents[1]!.id].sort());
    assert.deepEqual((await getAgentById(t.db, f.agents[0]!.id))?.lastConnectedAt, at);
    assert.notDeepEqual((await getAgentById(t.db, f.agents[2]!.id))?.lastConnectedAt, at);
  });

  it("refreshAgentConnections keeps the last refresh of an agent given twice", async () => {
    const f = await makeWorkspace(t.db);
    const agentId = f.agents[0]!.id;
    const replicaId = randomUUID();
    const first = new Date("2033-01-01T00:00:00Z");
    const second = new Date("2033-01-01T00:00:15Z");
    const connection = (await connectAgent(t.db, { id: agentId, replicaId, now: first }))!;
    await refreshAgentConnections(t.db, replicaId, [
      { agentId, connection, at: first },
      { agentId, connection, at: second },
    ]);
    assert.deepEqual((await getAgentById(t.db, agentId))?.lastConnectedAt, second);
  });

  it("a refused heartbeat reports the agent superseded only when the row's connection has ended", async () => {
    const f = await makeWorkspace(t.db);
    const agentId = f.agents[0]!.id;
    const [a, b] = [agentServerStore(t.db, randomUUID()), agentServerStore(t.db, randomUUID())];
    const live = await a.connect(agentId, new Date("2036-01-01T00:00:00Z"));
    const other = await b.connect(agentId, new Date("2036-01-01T00:00:01Z"));
    let superseded = 0;
    const beat = (at: string) => a.writeHeartbeats([{ agentId, connection: live, at: new Date(at), onSuperseded: () => superseded++ }]);
    // The row's connection (b's) lives: the refusal is all.
    await beat("2036-01-01T00:00:02Z");
    assert.equal(superseded, 0);
    assert.equal(await b.disconnect(agentId, other, new Date("2036-01-01T00:00:03Z")), true);
    await beat("2036-01-01T00:00:04Z");
    assert.equal(superseded, 1);
    assert.deepEqual((await getAgentById(t.db, agentId))?.lastConnectedAt, new Date("2036-01-01T00:00:01Z"));
  });

  it("a heartbeat of a connection that lands after its disconnect leaves the agent disconnected", async () => {
    const f = await makeWorkspace(t.db);
    const agentId = f.agents[0]!.id;
    const store = agentServerStore(t.db, randomUUID());
    const connection = await store.connect(agentId, new Date("2035-01-01T00:00:00Z"));
    await store.writeHeartbeats([{ agentId, connection, at: new Date("2035-01-01T00:00:15Z") }]);
    // The next beat was taken for a flush before the disconnect, and reaches the row after it.
    const late = { agentId, connection, at: new Date("2035-01-01T00:00:30Z") };
    const disconnectedAt = new Date("2035-01-01T00:00:31Z");
    assert.equal(await store.disconnect(agentId, connection, disconnectedAt), true);
    await store.writeHeartbeats([late]);
    const a = await getAgentById(t.db, agentId);
    assert.deepEqual([a?.disconnectedAt, a?.lastConnectedAt], [disconnectedAt, new Date("2035-01-01T00:00:15Z")]);
  });

  it("a reconnected agent's heartbeats clear the disconnect of its previous connection", async () => {
    const f = await makeWorkspace(t.db);
    const agentId = f.agents[0]!.id;
    const store = agentServerStore(t.db, randomUUID());
    const first = await store.connect(agentId, new Date("2036-01-01T00:00:00Z"));
    assert.equal(await store.disconnect(agentId, first, new Date("2036-01-01T00:01:00Z")), true);
    const second = await store.connect(agentId, new Date("2036-01-01T00:02:00Z"));
    await store.writeHeartbeats([{ agentId, connection: second, at: new Date("2036-01-01T00:02:15Z") }]);
    const a = await getAgentById(t.db, agentId);
    assert.deepEqual([a?.disconnectedAt, a?.lastConnectedAt], [null, new Date("2036-01-01T00:02:15Z")]);
  });

  if (t.name === "pg") {
    it("batched connection writes lock their rows in id order: two with the same agents in opposite orders never deadlock", async () => {
      const f = await makeWorkspace(t.db, { agents: Array.from({ length: 200 }, (_, i) => `a${i}`) });
      const ids = f.agents.map((a) => a.id);
      const reversed = [...ids].reverse();
      const [replicaA, replicaB] = [randomUUID(), randomUUID()];
      const now = new Date();
      for (let round = 0; round < 10; round++) {
        const [one, other] = await Promise.all([connectAgents(t.db, replicaA, ids.map((id) => ({ id, now }))), connectAgents(t.db, replicaB, reversed.map((id) => ({ id, now })))]);
        const refreshes = (connections: typeof one, order: string[]) => order.map((agentId, i) => ({ agentId, at: now, connection: connections[i]! }));
        await Promise.all([
          refreshAgentConnections(t.db, replicaA, refreshes(one, ids)),
          disconnectAgents(t.db, replicaB, reversed.map((id, i) => ({ id, generation: other[i]!.connectionGeneration, disconnectedAt: now }))),
        ]);
      }
    });

    it("a heartbeat UPDATE in flight while the disconnect commits does not undo it (PostgreSQL row-lock interleaving)", async () => {
      const f = await makeWorkspace(t.db);
      const agentId = f.agents[0]!.id;
      const replicaId = randomUUID();
      const store = agentServerStore(t.db, replicaId);
      const connection = await store.connect(agentId, new Date("2037-01-01T00:00:00Z"));
      const disconnectedAt = new Date("2037-01-01T00:00:31Z");
      let heartbeat: Promise<void> | undefined;
      await t.db.transaction(async (tx) => {
        // The disconnect holds the row lock, uncommitted; the heartbeat's UPDATE queues behind it.
        assert.equal(await disconnectAgent(tx, { id: agentId, replicaId, generation: connection.connectionGeneration, disconnectedAt }), true);
        heartbeat = store.writeHeartbeats([{ agentId, connection, at: new Date("2037-01-01T00:00:30Z") }]);
        await waitUntilBlockedOnLock(t.db, "%UPDATE workspace_agents a SET%");
      });
      await heartbeat;
      assert.deepEqual((await getAgentById(t.db, agentId))?.disconnectedAt, disconnectedAt);
    });
  }

  it("lifecycle and startup updates are stored", async () => {
    const f = await makeWorkspace(t.db);
    const id = f.agents[0]!.id;
    const at = new Date("2034-03-03T03:03:03Z");
    await updateAgentLifecycle(t.db, { id, lifecycleState: "ready", startedAt: at, readyAt: at });
    await updateAgentStartup(t.db, { id, version: "v2.13.0", expandedDirectory: "/home/coder", subsystems: ["envbox", "exectrace"], apiVersion: "2.13" });
    const a = await getAgentById(t.db, id);
    assert.deepEqual(
      [a?.lifecycleState, a?.startedAt, a?.readyAt, a?.version, a?.expandedDirectory, a?.subsystems, a?.apiVersion],
      ["ready", at, at, "v2.13.0", "/home/coder", ["envbox", "exectrace"], "2.13"],
    );
  });

  it("the subsystem 'none' is refused by the CHECK", async () => {
    const f = await makeWorkspace(t.db);
    await assert.rejects(
      updateAgentStartup(t.db, { id: f.agents[0]!.id, version: "v1.0.0", expandedDirectory: "", subsystems: ["none"], apiVersion: "2.0" }),
      (err) => isCheckViolation(err, "subsystems_not_none"),
    );
  });

  it("listAgentOverviews lists agents of the latest build only", async () => {
    const f = await makeWorkspace(t.db, { agents: ["old"] });
    await makeBuild(t.db, f.workspace, f.owner.id, { agents: ["new"] });
    const mine = (await listAgentOverviews(t.db)).filter((o) => o.workspaceId === f.workspace.id);
    assert.deepEqual(mine.map((o) => [o.agent.name, o.buildNumber, o.ownerUsername]), [["new", 2, f.owner.username]]);
  });
});

/**
 * Waits until a statement starting with `queryPattern` (a LIKE pattern) is waiting for a lock in
 * another session: PostgreSQL has no event for that, so pg_stat_activity is read until it shows.
 */
async function waitUntilBlockedOnLock(db: Queryable, queryPattern: string): Promise<void> {
  await eventually(async () => {
    const { rows } = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1 AND pid <> pg_backend_pid()",
      [queryPattern],
    );
    return rows[0]!.n > 0 ? true : undefined;
  }, 10_000, "a statement blocked on the row lock");
}
