/**
 * Two `serve` replicas behind HAProxy, agents and clients dialling the balancer: when the
 * replica an agent is on is SIGKILLed, its client (on the other replica) sees it LOST, the
 * agent's SDK dials again through the balancer and lands on the survivor, and the client sees
 * the agent's NODE again.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { CoordinateResponse_PeerUpdate_Kind as Kind } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { uuidFromBytes } from "../../src/agentapi/uuid-bytes.js";
import { connectAgent } from "../../src/client/index.js";
import { eventually } from "../support/agent-server.js";
import { useTestDatabase } from "../support/database.js";
import { makeWorkspace } from "../support/fixtures.js";
import { SKIP_HAPROXY, startBalancer, type Balancer } from "../support/haproxy.js";
import { startServeReplica, type ServeReplica } from "../support/serve-replica.js";
import { dialTailnetClient, type TailnetClient } from "../support/tailnet-client.js";
import { TestPeer } from "../support/tailnet-peer.js";

const ADMIN_TOKEN = "load-balancer-admin-token";
const LOST_WITHIN_MS = 6_000 + 4_000;

const skip = process.env.TEST_DATABASE_URL ? SKIP_HAPROXY : "needs TEST_DATABASE_URL";

describe("two replicas behind HAProxy", { skip }, () => {
  const t = useTestDatabase("pg");
  let replicas: ServeReplica[] = [];
  let lb: Balancer | undefined;
  const cleanups: (() => unknown)[] = [];
  before(async () => {
    replicas = await Promise.all([0, 1].map(() => startServeReplica([...t.testDb.cliArgs, "--admin-token", ADMIN_TOKEN, "--shutdown-grace", "1s"])));
    lb = await startBalancer(replicas.map((r) => r.url));
  });
  after(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    await lb?.close();
    await Promise.all(replicas.map((r) => r.stop()));
  });

  /** The number of client tunnels a replica holds, from its /metrics. */
  async function clientsOn(r: ServeReplica): Promise<number> {
    const text = await (await fetch(`${r.url}/metrics`)).text();
    return Number(/^agentgate_clients_connected (\S+)$/m.exec(text)?.[1] ?? 0);
  }

  test("a SIGKILLed replica's agent comes back through the balancer, and its client sees NODE again after LOST", async () => {
    const { agents } = await makeWorkspace(t.db);
    const agentId = agents[0]!.id;
    const conn = connectAgent({ url: lb!.url, token: agents[0]!.authToken });
    cleanups.push(() => conn.close());
    const coordinate = (derp: number) => {
      const peer = TestPeer.remote((requests, signal) => conn.tailnet.coordinate(requests, { signal }), agentId, "agent");
      peer.updateDERP(derp);
      return peer;
    };
    let agent = coordinate(1);
    const replicaId = await eventually(async () => {
      const { rows } = await t.db.query<{ id: string | null }>("SELECT last_connected_replica_id AS id FROM workspace_agents WHERE id = $1", [agentId]);
      return rows[0]?.id ?? undefined;
    }, 10_000, "the agent's replica");
    const doomed = replicas.find((r) => r.replicaId === replicaId)!;
    const survivor = replicas.find((r) => r !== doomed)!;

    // Round robin: within a few dials, one lands on the replica the agent is not on.
    let client: TailnetClient | undefined;
    for (let i = 0; i < 4 && client === undefined; i++) {
      const before = await clientsOn(survivor);
      const c = await dialTailnetClient(lb!.url, agentId, ADMIN_TOKEN);
      cleanups.push(() => c.close());
      await c.resume();
      if ((await clientsOn(survivor)) > before) client = c;
    }
    assert.ok(client, "a client landed on the other replica");
    const { peerId } = await client.resume();
    const me = client.peer(peerId);
    me.addTunnel(agentId);
    me.updateDERP(2);
    await me.waitForDERP(agentId, 1);
    await agent.waitForDERP(peerId, 2);

    const reconnected = new Promise<void>((resolve) => conn.once("disconnected", () => conn.once("connected", resolve)));
    await doomed.kill();
    await me.until(`LOST of the agent`, () => me.heard.get(agentId)?.kind === Kind.LOST, LOST_WITHIN_MS);
    await reconnected;
    agent = coordinate(3);
    await me.waitForDERP(agentId, 3);
    await agent.waitForDERP(peerId, 2);
    const aboutAgent = me.updates.filter((u) => uuidFromBytes(u.id, "id") === agentId).map((u) => Kind[u.kind]);
    assert.deepEqual(aboutAgent.slice(-2), ["LOST", "NODE"], `updates about the agent: ${aboutAgent.join(", ")}`);
    const { rows } = await t.db.query<{ id: string }>("SELECT last_connected_replica_id AS id FROM workspace_agents WHERE id = $1", [agentId]);
    assert.equal(rows[0]!.id, survivor.replicaId, "the agent is on the survivor now");
  });
});
