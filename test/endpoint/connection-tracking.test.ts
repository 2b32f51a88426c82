import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { workspaceOwnerChannel, type WorkspaceEvent } from "../../src/db/events.js";
import { randomUUID } from "node:crypto";
import { connectAgent, disconnectAgent } from "../../src/db/queries/agent-connections.js";
import { getAgentById } from "../../src/db/queries/agents.js";
import { agentStatus } from "../../src/status/agent-status.js";
import { makeBuild, makeWorkspace, type WorkspaceFixture } from "../support/fixtures.js";
import { eventually, startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { recordEvents } from "../support/events.js";
import { dialRawTunnel } from "../support/raw-tunnel.js";

/** Short intervals through configuration: a tick every 100 ms, inactive after 400 ms. */
const UPDATE_MS = 100;
const INACTIVE_MS = 400;

describe("connection tracking: pings, connection times, evictions, events", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer(t.db, { agentUpdateIntervalMs: UPDATE_MS, agentInactiveTimeoutMs: INACTIVE_MS });
  });
  after(() => srv.close());

  const fixture = () => makeWorkspace(t.db, { agents: ["main"] });
  const agentRow = async (ws: WorkspaceFixture) => (await getAgentById(t.db, ws.agents[0]!.id))!;
  /** The owner's events; `connectionUpdate()` awaits the next agt_connection_update of the agent (published after the write). */
  const watch = async (ws: WorkspaceFixture) => {
    const events = await recordEvents<WorkspaceEvent>(t.db.pubsub, workspaceOwnerChannel(ws.owner.id));
    const connectionUpdate = () =>
      events.next((e) => e.kind === "agt_connection_update" && e.agent_id === ws.agents[0]!.id && e.workspace_id === ws.workspace.id);
    return { events, connectionUpdate };
  };

  test("connect records first/last connected and this replica, and publishes agt_connection_update", async () => {
    const ws = await fixture();
    const { events, connectionUpdate } = await watch(ws);
    const before = new Date();
    const tunnel = await dialRawTunnel(srv.url, ws.agents[0]!.authToken);
    try {
      await connectionUpdate();
      const row = await agentRow(ws);
      assert.ok(row.firstConnectedAt && row.firstConnectedAt >= new Date(before.getTime() - 1000));
      assert.ok(row.lastConnectedAt && row.lastConnectedAt >= row.firstConnectedAt);
      assert.equal(row.lastConnectedReplicaId, srv.server.replicaId);
      assert.equal(agentStatus(row, new Date(), INACTIVE_MS).status, "connected");
    } finally {
      tunnel.ws.close();
      events.stop();
    }
  });

  test("periodic refreshes move last_connected_at forward while connected", async () => {
    const ws = await fixture();
    const { events, connectionUpdate } = await watch(ws);
    const tunnel = await dialRawTunnel(srv.url, ws.agents[0]!.authToken);
    try {
      await connectionUpdate();
      const first = (await agentRow(ws)).lastConnectedAt!;
      // Refreshes publish nothing (they would flood watchers): only the row shows them.
      await eventually(async () => ((await agentRow(ws)).lastConnectedAt! > first ? true : undefined), 3_000, "a refreshed last_connected_at");
    } finally {
      tunnel.ws.close();
      events.stop();
    }
  });

  test("a connection the row lost to another dial of the agent, since ended, records itself again", async () => {
    const ws = await fixture();
    const { events, connectionUpdate } = await watch(ws);
    const tunnel = await dialRawTunnel(srv.url, ws.agents[0]!.authToken);
    try {
      await connectionUpdate();
      // A dial of the same agent that another replica admitted after its client had given up:
      // recorded as the agent's connection, then ended at once.
      const other = randomUUID();
      const stale = (await connectAgent(t.db, { id: ws.agents[0]!.id, replicaId: other, now: new Date() }))!;
      assert.equal(await disconnectAgent(t.db, { id: ws.agents[0]!.id, replicaId: other, generation: stale.connectionGeneration, disconnectedAt: new Date() }), true);
      assert.equal(agentStatus(await agentRow(ws), new Date(), INACTIVE_MS).status, "disconnected");
      // The live tunnel's next refresh is refused; it records itself again and says so.
      await connectionUpdate();
      const row = await eventually(async () => {
        const r = await agentRow(ws);
        return r.disconnectedAt === null && r.lastConnectedReplicaId === srv.server.replicaId ? r : undefined;
      }, 5_000, "the live connection recorded again");
      assert.ok(row.connectionGeneration > stale.connectionGeneration);
      assert.equal(agentStatus(row, new Date(), INACTIVE_MS).status, "connected");
      // Its disconnect is written with the new guard.
      tunnel.ws.close(1000);
      await connectionUpdate();
      assert.notEqual((await agentRow(ws)).disconnectedAt, null);
    } finally {
      tunnel.ws.close();
      events.stop();
    }
  });

  test("a clean close sets disconnected_at and publishes agt_connection_update", async () => {
    const ws = await fixture();
    const { events, connectionUpdate } = await watch(ws);
    const tunnel = await dialRawTunnel(srv.url, ws.agents[0]!.authToken);
    await connectionUpdate();
    tunnel.ws.close(1000);
    await connectionUpdate();
    const row = await agentRow(ws);
    assert.notEqual(row.disconnectedAt, null);
    assert.equal(agentStatus(row, new Date(), INACTIVE_MS).status, "disconnected");
    events.stop();
  });

  test("an agent that stops answering pings is closed with 1001 ping timeout within inactive + one interval", async () => {
    const ws = await fixture();
    const { events, connectionUpdate } = await watch(ws);
    const tunnel = await dialRawTunnel(srv.url, ws.agents[0]!.authToken);
    await connectionUpdate();
    // Keep TCP open but stop reading: pings pile up unanswered.
    const stoppedAt = Date.now();
    (tunnel.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    await connectionUpdate();
    const row = await agentRow(ws);
    assert.ok(row.disconnectedAt !== null, "disconnected after the ping timeout");
    assert.ok(row.disconnectedAt.getTime() - stoppedAt <= INACTIVE_MS + 2 * UPDATE_MS + 500, "disconnected promptly after the timeout");
    const metrics = await srv.server.metrics.registry.getSingleMetricAsString("agentgate_agent_ping_timeouts_total");
    assert.match(metrics, /agentgate_agent_ping_timeouts_total [1-9]/);
    tunnel.ws.terminate();
    events.stop();
  });

  test("a new build evicts the connected agent with 1001 build is outdated", async () => {
    const ws = await fixture();
    const { events, connectionUpdate } = await watch(ws);
    const tunnel = await dialRawTunnel(srv.url, ws.agents[0]!.authToken);
    await connectionUpdate();
    await makeBuild(t.db, ws.workspace, ws.owner.id, { agents: ["main"] });
    const closed = await tunnel.closed;
    assert.deepEqual(closed, { code: 1001, reason: "build is outdated" });
    await connectionUpdate();
    assert.notEqual((await agentRow(ws)).disconnectedAt, null, "disconnected_at after eviction");
    const metrics = await srv.server.metrics.registry.metrics();
    assert.match(metrics, /^agentgate_agent_evictions_total\{reason="build_outdated"\} [1-9]/m, "the eviction is counted under its fixed reason");
    events.stop();
  });

  test("a reconnect through another replica is not undone by the old connection's late disconnect", async () => {
    const ws = await fixture();
    const { events, connectionUpdate } = await watch(ws);
    const replicaA = await startTestServer(t.db, { agentUpdateIntervalMs: UPDATE_MS, agentInactiveTimeoutMs: INACTIVE_MS });
    try {
      const first = await dialRawTunnel(replicaA.url, ws.agents[0]!.authToken);
      await connectionUpdate();
      assert.equal((await agentRow(ws)).lastConnectedReplicaId, replicaA.server.replicaId);
      const second = await dialRawTunnel(srv.url, ws.agents[0]!.authToken);
      await connectionUpdate();
      assert.equal((await agentRow(ws)).lastConnectedReplicaId, srv.server.replicaId);
      first.ws.close(1000);
      // Replica A's stale disconnect writes nothing and so publishes nothing: its tunnel count shows it was attempted.
      await eventually(async () => (replicaA.server.tunnelCount === 0 ? true : undefined), 2_000, "replica A's tunnel gone");
      const row = await agentRow(ws);
      assert.equal(row.disconnectedAt, null, "the newer connection still counts as connected");
      assert.equal(row.lastConnectedReplicaId, srv.server.replicaId);
      second.ws.close(1000);
    } finally {
      await replicaA.close();
      events.stop();
    }
  });

  test("shutdown writes the disconnect of every connected agent", async () => {
    const ws = await fixture();
    const { events, connectionUpdate } = await watch(ws);
    const own = await startTestServer(t.db, { agentUpdateIntervalMs: UPDATE_MS, agentInactiveTimeoutMs: INACTIVE_MS });
    const tunnel = await dialRawTunnel(own.url, ws.agents[0]!.authToken);
    await connectionUpdate();
    assert.equal((await agentRow(ws)).lastConnectedReplicaId, own.server.replicaId);
    await own.close();
    assert.notEqual((await agentRow(ws)).disconnectedAt, null);
    assert.equal((await tunnel.closed).code, 1001);
    events.stop();
  });
});
