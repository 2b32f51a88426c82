import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { getAgentById } from "../../src/db/queries/agents.js";
import { agentStatus } from "../../src/status/agent-status.js";
import { makeBuild, makeWorkspace, type WorkspaceFixture } from "../support/fixtures.js";
import { eventually, startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { recordEvents } from "../support/events.js";
import { dialRawTunnel } from "../support/raw-tunnel.js";

/** Short intervals through configuration: a tick every 100 ms, inactive after 400 ms. */
const UPDATE_MS = 100;
const INACTIVE_MS = 400;

describe("connection tracking (agent-api.md §1.8, C8–C10)", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer(t.db, { agentUpdateIntervalMs: UPDATE_MS, agentInactiveTimeoutMs: INACTIVE_MS });
  });
  after(() => srv.close());

  const fixture = () => makeWorkspace(t.db, { agents: ["main"] });
  const agentRow = async (ws: WorkspaceFixture) => (await getAgentById(t.db, ws.agents[0]!.id))!;
  const connectionEvent = (ws: WorkspaceFixture) => (e: { kind: string; agent_id?: string; workspace_id: string }) =>
    e.kind === "agt_connection_update" && e.agent_id === ws.agents[0]!.id && e.workspace_id === ws.workspace.id;

  test("connect records first/last connected and this replica, and publishes agt_connection_update", async () => {
    const ws = await fixture();
    const events = await recordEvents<{ kind: string; agent_id?: string; workspace_id: string }>(t.db.pubsub, `workspace_owner:${ws.owner.id}`);
    const before = new Date();
    const tunnel = await dialRawTunnel(srv.url, ws.agents[0]!.authToken);
    try {
      await events.next(connectionEvent(ws));
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
    const tunnel = await dialRawTunnel(srv.url, ws.agents[0]!.authToken);
    try {
      const first = (await eventually(async () => (await agentRow(ws)).lastConnectedAt ?? undefined))!;
      await eventually(async () => ((await agentRow(ws)).lastConnectedAt! > first ? true : undefined), 3_000, "a refreshed last_connected_at");
    } finally {
      tunnel.ws.close();
    }
  });

  test("a clean close sets disconnected_at within 1 s and publishes agt_connection_update", async () => {
    const ws = await fixture();
    const events = await recordEvents<{ kind: string; agent_id?: string; workspace_id: string }>(t.db.pubsub, `workspace_owner:${ws.owner.id}`);
    const tunnel = await dialRawTunnel(srv.url, ws.agents[0]!.authToken);
    await events.next(connectionEvent(ws));
    tunnel.ws.close(1000);
    const row = await eventually(async () => {
      const r = await agentRow(ws);
      return r.disconnectedAt !== null ? r : undefined;
    }, 1_000, "disconnected_at");
    assert.equal(agentStatus(row, new Date(), INACTIVE_MS).status, "disconnected");
    await events.next(connectionEvent(ws));
    events.stop();
  });

  test("an agent that stops answering pings is closed with 1001 ping timeout within inactive + one interval", async () => {
    const ws = await fixture();
    const tunnel = await dialRawTunnel(srv.url, ws.agents[0]!.authToken);
    await eventually(async () => (await agentRow(ws)).lastConnectedAt ?? undefined);
    // Keep TCP open but stop reading: pings pile up unanswered.
    const stoppedAt = Date.now();
    (tunnel.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const row = await eventually(async () => {
      const r = await agentRow(ws);
      return r.disconnectedAt !== null ? r : undefined;
    }, INACTIVE_MS + UPDATE_MS + 1_000, "disconnect after ping timeout");
    assert.ok(row.disconnectedAt!.getTime() - stoppedAt <= INACTIVE_MS + 2 * UPDATE_MS + 500, "disconnected promptly after the timeout");
    const metrics = await srv.server.metrics.registry.getSingleMetricAsString("agentgate_agent_ping_timeouts_total");
    assert.match(metrics, /agentgate_agent_ping_timeouts_total [1-9]/);
    tunnel.ws.terminate();
  });

  test("a new build evicts the connected agent with 1001 build is outdated", async () => {
    const ws = await fixture();
    const tunnel = await dialRawTunnel(srv.url, ws.agents[0]!.authToken);
    await eventually(async () => (await agentRow(ws)).lastConnectedAt ?? undefined);
    await makeBuild(t.db, ws.workspace, ws.owner.id, { agents: ["main"] });
    const closed = await tunnel.closed;
    assert.deepEqual(closed, { code: 1001, reason: "build is outdated" });
    await eventually(async () => ((await agentRow(ws)).disconnectedAt !== null ? true : undefined), 1_000, "disconnected_at after eviction");
  });

  test("a reconnect through another replica is not undone by the old connection's late disconnect", async () => {
    const ws = await fixture();
    const replicaA = await startTestServer(t.db, { agentUpdateIntervalMs: UPDATE_MS, agentInactiveTimeoutMs: INACTIVE_MS });
    try {
      const first = await dialRawTunnel(replicaA.url, ws.agents[0]!.authToken);
      await eventually(async () => ((await agentRow(ws)).lastConnectedReplicaId === replicaA.server.replicaId ? true : undefined));
      const second = await dialRawTunnel(srv.url, ws.agents[0]!.authToken);
      await eventually(async () => ((await agentRow(ws)).lastConnectedReplicaId === srv.server.replicaId ? true : undefined));
      first.ws.close(1000);
      // Replica A counts the tunnel gone only after its final disconnect write was attempted.
      await eventually(async () => (replicaA.server.tunnelCount === 0 ? true : undefined), 2_000, "replica A's tunnel gone");
      const row = await agentRow(ws);
      assert.equal(row.disconnectedAt, null, "the newer connection still counts as connected");
      assert.equal(row.lastConnectedReplicaId, srv.server.replicaId);
      second.ws.close(1000);
    } finally {
      await replicaA.close();
    }
  });

  test("shutdown writes the disconnect of every connected agent", async () => {
    const ws = await fixture();
    const own = await startTestServer(t.db, { agentUpdateIntervalMs: UPDATE_MS, agentInactiveTimeoutMs: INACTIVE_MS });
    const tunnel = await dialRawTunnel(own.url, ws.agents[0]!.authToken);
    await eventually(async () => ((await agentRow(ws)).lastConnectedReplicaId === own.server.replicaId ? true : undefined));
    await own.close();
    assert.notEqual((await agentRow(ws)).disconnectedAt, null);
    assert.equal((await tunnel.closed).code, 1001);
  });
});
