/**
 * The coordinator on one replica, on both engines: the rules peers see (connect and replace,
 * update_self, tunnels, disconnect vs lost, ready-for-handshake, deduplication, bounded queues,
 * shutdown) and the per-request authorization.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { CoordinateResponse_PeerUpdate_Kind as Kind } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { Coordinator } from "../../src/tailnet/coordinator.js";
import { agentAddresses, LEGACY_AGENT_ADDRESS } from "../../src/tailnet/agent-addresses.js";
import { RESPONSE_QUEUE } from "../../src/tailnet/local-peer.js";
import { silentLogger } from "../../src/log.js";
import { forEachEngine } from "../support/database.js";
import { TestPeer } from "../support/tailnet-peer.js";

forEachEngine((t) => {
  let coordinator: Coordinator;
  before(async () => {
    coordinator = await Coordinator.start({ db: t.db, replicaId: randomUUID(), logger: silentLogger(), heartbeatIntervalMs: 200 });
  });
  after(() => coordinator.close());

  test("agent and client exchange DERP regions both ways through a tunnel", async () => {
    const agent = TestPeer.agent(coordinator);
    const client = TestPeer.client(coordinator, agent.id);
    client.addTunnel(agent.id);
    agent.updateDERP(10);
    client.updateDERP(11);
    await client.waitForDERP(agent.id, 10);
    await agent.waitForDERP(client.id, 11);
    agent.updateDERP(20);
    await client.waitForDERP(agent.id, 20);
    client.updateDERP(21);
    await agent.waitForDERP(client.id, 21);
  });

  test("graceful disconnect: the other side sees DISCONNECTED and the stream closes", async () => {
    const { agent, client } = await TestPeer.pair(coordinator);
    client.disconnect();
    await agent.waitForKind(client.id, Kind.DISCONNECTED, "graceful disconnect");
    assert.equal(await client.closed, undefined);
  });

  test("a dropped stream: the other side sees LOST", async () => {
    const { agent, client } = await TestPeer.pair(coordinator);
    agent.drop();
    await client.waitForKind(agent.id, Kind.LOST, "lost");
  });

  test("an agent reconnecting with the same id at once gets the client's node: tunnels survive reconnects", async () => {
    const agent = TestPeer.agent(coordinator);
    const client = TestPeer.client(coordinator, agent.id);
    client.addTunnel(agent.id);
    client.updateDERP(5);
    agent.updateDERP(6);
    await agent.waitForDERP(client.id, 5);
    agent.cancel();
    await client.waitForKind(agent.id, Kind.LOST);
    const again = TestPeer.agent(coordinator, agent.id);
    await again.waitForDERP(client.id, 5);
    again.updateDERP(7);
    await client.waitForDERP(agent.id, 7);
  });

  test("a second stream with the same id gets the client's node and the first stream's responses end", async () => {
    const agent = TestPeer.agent(coordinator);
    const client = TestPeer.client(coordinator, agent.id);
    client.addTunnel(agent.id);
    client.updateDERP(3);
    await agent.waitForDERP(client.id, 3);
    const second = TestPeer.agent(coordinator, agent.id);
    await second.waitForDERP(client.id, 3);
    await agent.waitForClose();
    // Replacing is not leaving: the client is not told the agent went.
    second.updateDERP(4);
    await client.waitForDERP(agent.id, 4);
    assert.ok(!client.updates.some((u) => u.kind === Kind.LOST || u.kind === Kind.DISCONNECTED));
  });

  test("remove_tunnel: both sides see DISCONNECTED", async () => {
    const { agent, client } = await TestPeer.pair(coordinator);
    client.removeTunnel(agent.id);
    await client.waitForKind(agent.id, Kind.DISCONNECTED, "tunnel removed");
    await agent.waitForKind(client.id, Kind.DISCONNECTED, "tunnel removed");
  });

  test("ready_for_handshake is forwarded along a tunnel", async () => {
    const agent = TestPeer.agent(coordinator);
    const client = TestPeer.client(coordinator, agent.id);
    client.addTunnel(agent.id);
    client.updateDERP(2);
    await agent.waitForDERP(client.id, 2);
    agent.readyForHandshake(client.id);
    await client.waitForKind(agent.id, Kind.READY_FOR_HANDSHAKE);
  });

  test("ready_for_handshake without a shared tunnel answers an error and the stream stays up", async () => {
    const agent = TestPeer.agent(coordinator);
    const stranger = randomUUID();
    agent.readyForHandshake(stranger);
    await agent.waitForError(`you do not share a tunnel with "${stranger}"`);
    const client = TestPeer.client(coordinator, agent.id);
    client.addTunnel(agent.id);
    client.updateDERP(8);
    await agent.waitForDERP(client.id, 8);
  });

  test("a node equal to the last one sent is not sent again, and LOST about a peer never told is not sent", async () => {
    const agent = TestPeer.agent(coordinator);
    const client = TestPeer.client(coordinator, agent.id);
    const silent = TestPeer.client(coordinator, agent.id);
    client.addTunnel(agent.id);
    silent.addTunnel(agent.id);
    client.updateDERP(5);
    agent.updateDERP(1);
    await client.waitForDERP(agent.id, 1);
    await agent.waitForDERP(client.id, 5);
    agent.updateDERP(1);
    agent.updateDERP(2);
    await client.waitForDERP(agent.id, 2);
    assert.deepEqual(client.updates.map((u) => [Kind[u.kind], u.node?.preferredDerp]), [["NODE", 1], ["NODE", 2]]);
    // `silent` never sent a node, so the agent never heard of it and hears nothing when it drops.
    silent.drop();
    client.disconnect();
    await agent.waitForKind(client.id, Kind.DISCONNECTED);
    assert.ok(!agent.updates.some((u) => u.kind !== Kind.NODE && u.reason === "lost"));
  });

  test(`a peer that stops reading is dropped with DISCONNECTED "failed update" once ${RESPONSE_QUEUE} responses wait, and nobody waits for it`, async () => {
    const agent = TestPeer.agent(coordinator);
    const slow = TestPeer.client(coordinator, agent.id, randomUUID(), { reading: false });
    const watcher = TestPeer.client(coordinator, agent.id);
    slow.addTunnel(agent.id);
    watcher.addTunnel(agent.id);
    slow.updateDERP(1);
    await agent.waitForDERP(slow.id, 1);
    // One response to `slow` per update the watcher sees; the watcher keeps getting them all. The
    // first is taken by the read that started the stream, the next RESPONSE_QUEUE fill the queue.
    for (let region = 1; region <= RESPONSE_QUEUE + 2; region++) {
      agent.updateDERP(region);
      await watcher.waitForDERP(agent.id, region);
    }
    await agent.waitForKind(slow.id, Kind.DISCONNECTED, "failed update");
    await slow.firstUnread;
    const left = [];
    for await (const res of slow.unread!) left.push(res);
    assert.deepEqual(left, [], "what the dropped peer had not read is discarded");
  });

  test("coordinator shutdown: every peer sees the others LOST, not DISCONNECTED, and the streams end", async () => {
    const own = await Coordinator.start({ db: t.db, replicaId: randomUUID(), logger: silentLogger() });
    const { agent, client } = await TestPeer.pair(own);
    await own.close();
    await client.waitForClose();
    await agent.waitForClose();
    assert.equal(client.heard.get(agent.id)?.kind, Kind.LOST);
    assert.equal(agent.heard.get(client.id)?.kind, Kind.LOST);
    // Its peers keep their last nodes, as lost rows.
    assert.equal((await coordinator.node(agent.id))?.preferredDerp, 1);
  });

  test("counters: peers by kind, tunnels and node updates", async () => {
    const before = coordinator.counters();
    const agent = TestPeer.agent(coordinator);
    const client = TestPeer.client(coordinator, agent.id);
    client.addTunnel(agent.id);
    agent.updateDERP(1);
    await client.waitForDERP(agent.id, 1);
    const now = coordinator.counters();
    assert.equal(now.peers.agent - before.peers.agent, 1);
    assert.equal(now.peers.client - before.peers.client, 1);
    assert.equal(now.tunnels - before.tunnels, 1);
    assert.ok(now.nodeUpdatesSent > before.nodeUpdatesSent);
    client.disconnect();
    agent.disconnect();
    await Promise.all([client.waitForClose(), agent.waitForClose()]);
  });

  // Authorization, per request (agent: own addresses, no tunnels; client: one agent, /128, no ready_for_handshake).
  for (const [name, address] of [
    ["its Tailscale-prefix address", (id: string) => agentAddresses(id)[0]!],
    ["its Coder-prefix address", (id: string) => agentAddresses(id)[1]!],
    ["the legacy address", () => LEGACY_AGENT_ADDRESS],
  ] as const) {
    test(`an agent claiming ${name} /128 is accepted`, async () => {
      const agent = TestPeer.agent(coordinator);
      const client = TestPeer.client(coordinator, agent.id);
      client.addTunnel(agent.id);
      agent.updateNode({ preferredDerp: 3, addresses: [`${address(agent.id)}/128`] });
      await client.waitForDERP(agent.id, 3);
    });
  }

  for (const [name, address, error] of [
    ["a random /128", () => `${agentAddresses(randomUUID())[0]}/128`, /invalid node address/],
    ["its own address as a /64", (id: string) => `${agentAddresses(id)[0]}/64`, /expected 128, got 64/],
  ] as const) {
    test(`an agent claiming ${name} is kicked: its stream fails and its client sees it LOST`, async () => {
      const agent = TestPeer.agent(coordinator);
      const client = TestPeer.client(coordinator, agent.id);
      client.addTunnel(agent.id);
      agent.updateDERP(1);
      await client.waitForDERP(agent.id, 1);
      agent.updateNode({ addresses: [address(agent.id)] });
      const err = await agent.closed;
      assert.match(String(err), error);
      await client.waitForKind(agent.id, Kind.LOST);
    });
  }

  test("an agent may not open tunnels", async () => {
    const agent = TestPeer.agent(coordinator);
    agent.addTunnel(randomUUID());
    assert.match(String(await agent.closed), /agents cannot open tunnels/);
  });

  test("a client with a /128 address gets its node stored", async () => {
    const agent = TestPeer.agent(coordinator);
    const client = TestPeer.client(coordinator, agent.id);
    client.addTunnel(agent.id);
    client.updateNode({ preferredDerp: 4, addresses: ["fd7a:115c:a1e0::1234/128"] });
    await agent.waitForDERP(client.id, 4);
    assert.equal((await coordinator.node(client.id))?.addresses[0], "fd7a:115c:a1e0::1234/128");
  });

  test("a client with a /64 address is kicked, and only it", async () => {
    const agent = TestPeer.agent(coordinator);
    const bad = TestPeer.client(coordinator, agent.id);
    const good = TestPeer.client(coordinator, agent.id);
    good.addTunnel(agent.id);
    bad.addTunnel(agent.id);
    bad.updateNode({ addresses: ["fd7a:115c:a1e0::/64"] });
    assert.match(String(await bad.closed), /expected 128, got 64/);
    agent.updateDERP(9);
    await good.waitForDERP(agent.id, 9);
  });

  test("a malformed request (a 3-byte id, a node over 16 KiB) fails only that stream, with InvalidArgument", async () => {
    const agent = TestPeer.agent(coordinator);
    const badId = TestPeer.client(coordinator, agent.id);
    badId.send({ removeTunnel: { id: new Uint8Array(3) } });
    const err = await badId.closed;
    assert.ok(err instanceof ConnectError && err.code === Code.InvalidArgument && /invalid UUID/.test(err.rawMessage), String(err));
    const huge = TestPeer.client(coordinator, agent.id);
    huge.updateNode({ endpoints: Array.from({ length: 1000 }, (_, i) => `192.0.2.${i % 250}:${10_000 + i}`) });
    const tooBig = await huge.closed;
    assert.ok(tooBig instanceof ConnectError && tooBig.code === Code.InvalidArgument && /exceeds 16384/.test(tooBig.rawMessage), String(tooBig));
    const fine = TestPeer.client(coordinator, agent.id);
    fine.addTunnel(agent.id);
    agent.updateDERP(2);
    await fine.waitForDERP(agent.id, 2);
  });

  test("a client may only open a tunnel to its own agent, and may not send ready_for_handshake", async () => {
    const agent = TestPeer.agent(coordinator);
    const other = randomUUID();
    const tunnelling = TestPeer.client(coordinator, agent.id);
    tunnelling.addTunnel(other);
    assert.match(String(await tunnelling.closed), new RegExp(`invalid agent id, expected ${agent.id}, got ${other}`));
    const handshaking = TestPeer.client(coordinator, agent.id);
    handshaking.readyForHandshake(agent.id);
    assert.match(String(await handshaking.closed), /clients may not send ready_for_handshake/);
  });
});
