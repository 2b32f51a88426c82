/**
 * The client coordination route of a real server: a client dials
 * `/api/v2/workspaceagents/{agent}/coordinate` with the admin token or a client token, gets a
 * yamux tunnel serving the Tailnet service only, and coordinates with the agent's own tunnel.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { Agent } from "../../gen/coder/agent/v2/agent_pb.js";
import { CoordinateResponse_PeerUpdate_Kind as Kind, Tailnet } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { uuidFromBytes, uuidToBytes } from "../../src/agentapi/uuid-bytes.js";
import { connectErrorOf, createDrpcClient } from "../../src/rpc/index.js";
import { createControlClient, type ControlClient } from "../../src/cli/control-client.js";
import { connectAgent, DialRefusedError, type AgentConnection } from "../../src/client/index.js";
import { eventually, startTestServer, type TestServer } from "../support/agent-server.js";
import { forEachEngine } from "../support/database.js";
import { rawGet } from "../support/http.js";
import { coordinateUrl, dialTailnetClient, type TailnetClient } from "../support/tailnet-client.js";
import { TestPeer } from "../support/tailnet-peer.js";

const ADMIN_TOKEN = "client-endpoint-admin-token";

forEachEngine((t) => {
  let srv: TestServer;
  let control: ControlClient;
  const cleanups: (() => unknown)[] = [];
  before(async () => {
    srv = await startTestServer(t.db, { adminToken: ADMIN_TOKEN, shutdownGraceMs: 1_000 });
    control = createControlClient({ url: srv.url, adminToken: ADMIN_TOKEN });
  });
  after(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    await srv.close();
  });

  /** A workspace with agents "main" and "gpu", through the control API. */
  async function workspace() {
    const owner = `u-${randomUUID().slice(0, 8)}`;
    const res = await control.createWorkspace({ owner, name: "dev", spec: { agents: [{ name: "main" }, { name: "gpu" }] } });
    return { owner, workspaceId: res.workspaceId, main: res.agents[0]!, gpu: res.agents[1]! };
  }

  /** The agent's own tunnel (the SDK) and a peer coordinating on it. */
  function agentPeer(agent: { id: string; token: string }): { conn: AgentConnection; peer: TestPeer } {
    const conn = connectAgent({ url: srv.url, token: agent.token });
    cleanups.push(() => conn.close());
    const peer = TestPeer.remote((requests, signal) => conn.tailnet.coordinate(requests, { signal }), agent.id, "agent");
    return { conn, peer };
  }

  async function client(agentId: string, token: string, opts?: { resumeToken?: string }): Promise<TailnetClient> {
    const c = await dialTailnetClient(srv.url, agentId, token, opts);
    cleanups.push(() => c.close());
    return c;
  }

  test("with the admin token, a client and the agent exchange DERP regions both ways; the client's peer id is fresh per connection", async () => {
    const ws = await workspace();
    const { peer: agent } = agentPeer(ws.main);
    const c = await client(ws.main.id, ADMIN_TOKEN);
    const { peerId } = await c.resume();
    const other = await (await client(ws.main.id, ADMIN_TOKEN)).resume();
    assert.notEqual(other.peerId, peerId, "each connection its own peer id");
    const me = c.peer(peerId);
    me.addTunnel(ws.main.id);
    me.updateDERP(2);
    agent.updateDERP(1);
    await me.waitForDERP(ws.main.id, 1);
    await agent.waitForDERP(peerId, 2);
    agent.updateDERP(3);
    await me.waitForDERP(ws.main.id, 3);
    me.disconnect();
    await agent.waitForKind(peerId, Kind.DISCONNECTED, "graceful disconnect");
  });

  test("a client token reaches its agent; it is refused once revoked, expired, or its workspace is deleted", async () => {
    const ws = await workspace();
    const { token } = await control.issueClientToken({ target: { case: "agentId", value: ws.main.id } });
    const c = await client(ws.main.id, token);
    assert.ok((await c.resume()).peerId);
    await assert.rejects(client(ws.gpu.id, token), (err: unknown) => err instanceof DialRefusedError && err.status === 401, "not another agent");
    await control.revokeClientToken({ token });
    await assert.rejects(client(ws.main.id, token), (err: unknown) => err instanceof DialRefusedError && err.status === 401 && /Client not authorized/.test(err.message));

    const short = await control.issueClientToken({ target: { case: "workspace", value: ws.workspaceId }, ttl: { seconds: 1n } });
    await client(ws.gpu.id, short.token);
    await eventually(async () => ((await rawGet(`${coordinateUrl(srv.url, ws.gpu.id).href}?version=2.0`, { "Coder-Session-Token": short.token })).status === 401 ? true : undefined), 5_000, "expiry");

    const byWorkspace = await control.issueClientToken({ target: { case: "workspace", value: ws.workspaceId } });
    await client(ws.main.id, byWorkspace.token);
    await control.deleteWorkspace({ workspace: ws.workspaceId });
    await assert.rejects(client(ws.main.id, byWorkspace.token), (err: unknown) => err instanceof DialRefusedError && err.status === 401);
    await assert.rejects(client(ws.main.id, ADMIN_TOKEN), (err: unknown) => err instanceof DialRefusedError && err.status === 404, "the admin token finds no deleted agent");
  });

  test("the token is taken as the agent endpoint takes it: header, cookie, query, Bearer; anything else is refused before the upgrade", async () => {
    const ws = await workspace();
    const base = coordinateUrl(srv.url, ws.main.id);
    const url = (query: string) => `${base.href}?version=2.0${query}`;
    const upgraded = async (u: string, headers: Record<string, string>) => (await rawGet(u, headers)).upgraded;
    assert.ok(await upgraded(url(""), { "Coder-Session-Token": ADMIN_TOKEN }));
    assert.ok(await upgraded(url(""), { cookie: `coder_session_token=${ADMIN_TOKEN}` }));
    assert.ok(await upgraded(url(`&coder_session_token=${ADMIN_TOKEN}`), {}));
    assert.ok(await upgraded(url(""), { authorization: `Bearer ${ADMIN_TOKEN}` }));
    const refused = async (u: string, headers: Record<string, string>, opts?: { upgrade?: boolean }) => {
      const res = await rawGet(u, headers, opts);
      assert.equal(res.upgraded, false);
      return { status: res.status, body: JSON.parse(res.body) as { message: string } };
    };
    assert.equal((await refused(url(""), {})).status, 401, "no token");
    assert.equal((await refused(url(""), { "Coder-Session-Token": "wrong" })).status, 401);
    assert.equal((await refused(url(""), { "Coder-Session-Token": ws.main.token })).status, 401, "an agent token is not a client's");
    const noVersion = await refused(base.href, { "Coder-Session-Token": ADMIN_TOKEN });
    assert.equal(noVersion.status, 400);
    assert.match(JSON.stringify(noVersion.body), /version 1\.0 is no longer supported/);
    assert.equal((await refused(url("").replace(ws.main.id, "not-a-uuid"), { "Coder-Session-Token": ADMIN_TOKEN })).status, 400);
    assert.equal((await refused(url("").replace(ws.main.id, randomUUID()), { "Coder-Session-Token": ADMIN_TOKEN })).status, 404);
    assert.equal((await refused(url("&resume_token=forged"), { "Coder-Session-Token": ADMIN_TOKEN })).status, 401);
    assert.equal((await refused(url(""), { "Coder-Session-Token": ADMIN_TOKEN }, { upgrade: false })).status, 426);
  });

  test("reconnecting with ?resume_token= keeps the peer id, so the agent sees the same peer come back and its tunnel kept", async () => {
    const ws = await workspace();
    const { peer: agent } = agentPeer(ws.main);
    agent.updateDERP(1);
    const first = await client(ws.main.id, ADMIN_TOKEN);
    const { token: resumeToken, peerId } = await first.resume();
    const before = first.peer(peerId);
    before.addTunnel(ws.main.id);
    before.updateDERP(5);
    await agent.waitForDERP(peerId, 5);
    first.close();
    await agent.waitForKind(peerId, Kind.LOST);
    const second = await client(ws.main.id, ADMIN_TOKEN, { resumeToken });
    assert.equal((await second.resume()).peerId, peerId);
    const again = second.peer(peerId);
    // No add_tunnel this time: the tunnel outlived the connection.
    await again.waitForDERP(ws.main.id, 1);
    again.updateDERP(6);
    await agent.waitForDERP(peerId, 6);
  });

  test("a client tunnel serves the Tailnet service alone, and a client may only open a tunnel to its agent", async () => {
    const ws = await workspace();
    const c = await client(ws.main.id, ADMIN_TOKEN);
    await assert.rejects(c.agent.getManifest({}), (err: unknown) => err instanceof ConnectError && err.code === Code.Unimplemented);
    const { peerId } = await c.resume();
    const stray = c.peer(peerId);
    stray.send({ addTunnel: { id: uuidToBytes(ws.gpu.id) } });
    const err = await stray.closed;
    assert.ok(err instanceof ConnectError && err.code === Code.PermissionDenied && /invalid agent id/.test(err.rawMessage), String(err));
  });

  test("a client speaking DRPC on its tunnel (as Coder's clients do) coordinates with the agent; the Agent service is not there", async () => {
    const ws = await workspace();
    const { peer: agent } = agentPeer(ws.main);
    agent.updateDERP(4);
    const c = await client(ws.main.id, ADMIN_TOKEN);
    const call = createDrpcClient(Tailnet, c.tunnel.session).coordinate();
    await call.send({ addTunnel: { id: uuidToBytes(ws.main.id) } });
    await call.send({ updateSelf: { node: { preferredDerp: 14 } } });
    for (;;) {
      const res = await call.receive();
      assert.ok(res !== undefined, "the call ended before the agent's node came");
      if (res.peerUpdates.some((u) => uuidFromBytes(u.id, "id") === ws.main.id && u.node?.preferredDerp === 4)) break;
    }
    await agent.until("the DRPC client's node", () => [...agent.heard.values()].some((h) => h.node?.preferredDerp === 14));
    call.close();
    await assert.rejects(createDrpcClient(Agent, c.tunnel.session).getManifest({}), (err: unknown) => connectErrorOf(err).code === Code.Unimplemented);
  });

  test("WorkspaceUpdates on a client connection: the owner's workspace and its agents", async () => {
    const ws = await workspace();
    const { token } = await control.issueClientToken({ target: { case: "agentId", value: ws.main.id } });
    const c = await client(ws.main.id, token);
    const { rows } = await t.db.query<{ owner_id: string }>("SELECT owner_id FROM workspaces WHERE id = $1", [ws.workspaceId]);
    const abort = new AbortController();
    const updates = c.tailnet.workspaceUpdates({ workspaceOwnerId: uuidToBytes(rows[0]!.owner_id) }, { signal: abort.signal })[Symbol.asyncIterator]();
    const first = (await updates.next()).value!;
    assert.equal(first.upsertedWorkspaces.length, 1);
    assert.deepEqual(first.upsertedAgents.map((a: { name: string }) => a.name).sort(), ["gpu", "main"]);
    abort.abort();
  });

  test("/metrics counts client tunnels, coordinator peers by kind, tunnels and node updates", async () => {
    const ws = await workspace();
    const { peer: agent } = agentPeer(ws.main);
    const c = await client(ws.main.id, ADMIN_TOKEN);
    const { peerId } = await c.resume();
    const me = c.peer(peerId);
    me.addTunnel(ws.main.id);
    agent.updateDERP(1);
    await me.waitForDERP(ws.main.id, 1);
    const text = await (await fetch(`${srv.url}/metrics`)).text();
    const value = (line: string) => Number(new RegExp(`^${line.replace(/[{}"]/g, (m) => `\\${m}`)} (\\S+)$`, "m").exec(text)?.[1]);
    assert.ok(value("agentgate_clients_connected") >= 1, text);
    assert.ok(value('agentgate_tailnet_peers{kind="client"}') >= 1);
    assert.ok(value('agentgate_tailnet_peers{kind="agent"}') >= 1);
    assert.ok(value("agentgate_tailnet_tunnels") >= 1);
    assert.ok(value("agentgate_tailnet_node_updates_sent_total") >= 1);
    assert.equal(value("agentgate_tailnet_replicas"), 1);
    assert.ok(value('agentgate_client_upgrades_total{result="upgraded",status="101"}') >= 1);
    assert.equal(value("agentgate_tailnet_heartbeat_failures_total"), 0);
    assert.equal(value("agentgate_tailnet_peers_dropped_total"), 0);
  });
});
