/**
 * Two `agentgate serve` processes on one PostgreSQL database, as an operator runs replicas: an
 * agent on one and its client on the other coordinate through the tables and NOTIFY alone; a
 * SIGKILLed replica's peers become LOST for the others once its heartbeats stop (6 s), and come
 * back through the survivor. The Go probe (hashicorp/yamux + grpc-go) does the same as agent and
 * as client. PostgreSQL only: PGlite is one process.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { CoordinateResponse_PeerUpdate_Kind as Kind } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { connectAgent } from "../../src/client/index.js";
import { agentAddresses } from "../../src/tailnet/agent-addresses.js";
import { useTestDatabase } from "../support/database.js";
import { makeWorkspace } from "../support/fixtures.js";
import { interopKit, SKIP_INTEROP, type InteropKit } from "../support/interop-kit.js";
import { startServeReplica, type ServeReplica } from "../support/serve-replica.js";
import { dialTailnetClient, type TailnetClient } from "../support/tailnet-client.js";
import { TestPeer } from "../support/tailnet-peer.js";

const ADMIN_TOKEN = "serve-replicas-admin-token";
/** A replica is dead 6 s after its last heartbeat; allow for heartbeat phase and a loaded machine. */
const LOST_WITHIN_MS = 6_000 + 4_000;

describe("tailnet coordination across two serve processes", { skip: process.env.TEST_DATABASE_URL ? false : "needs TEST_DATABASE_URL" }, () => {
  const t = useTestDatabase("pg");
  const replicas: ServeReplica[] = [];
  const cleanups: (() => unknown)[] = [];
  let r1: ServeReplica;
  let r2: ServeReplica;

  const replica = async () => {
    const r = await startServeReplica([...t.testDb.cliArgs, "--admin-token", ADMIN_TOKEN, "--shutdown-grace", "1s"]);
    replicas.push(r);
    return r;
  };
  before(async () => {
    [r1, r2] = await Promise.all([replica(), replica()]);
  });
  after(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    await Promise.all(replicas.map((r) => r.stop()));
  });

  /** An agent of a new workspace coordinating through its SDK tunnel to `on`. */
  async function agentOn(on: ServeReplica) {
    const { agents } = await makeWorkspace(t.db);
    const agent = agents[0]!;
    const conn = connectAgent({ url: on.url, token: agent.authToken });
    cleanups.push(() => conn.close());
    return { id: agent.id, token: agent.authToken, peer: TestPeer.remote((requests, signal) => conn.tailnet.coordinate(requests, { signal }), agent.id, "agent") };
  }

  async function clientOn(on: ServeReplica, agentId: string, resumeToken?: string): Promise<{ c: TailnetClient; peer: TestPeer; peerId: string; resumeToken: string }> {
    const c = await dialTailnetClient(on.url, agentId, ADMIN_TOKEN, { resumeToken });
    cleanups.push(() => c.close());
    const resumed = await c.resume();
    return { c, peer: c.peer(resumed.peerId), peerId: resumed.peerId, resumeToken: resumed.token };
  }

  test("an agent on replica 1 and its client on replica 2 exchange DERP regions both ways; a graceful disconnect is DISCONNECTED", async () => {
    const agent = await agentOn(r1);
    const client = await clientOn(r2, agent.id);
    client.peer.addTunnel(agent.id);
    client.peer.updateDERP(12);
    agent.peer.updateDERP(1);
    await client.peer.waitForDERP(agent.id, 1);
    await agent.peer.waitForDERP(client.peerId, 12);
    agent.peer.updateDERP(2);
    client.peer.updateDERP(22);
    await client.peer.waitForDERP(agent.id, 2);
    await agent.peer.waitForDERP(client.peerId, 22);
    client.peer.disconnect();
    await agent.peer.waitForKind(client.peerId, Kind.DISCONNECTED, "graceful disconnect");
  });

  test("the Go probe coordinates as an agent on replica 1 and as a client on replica 2", { skip: SKIP_INTEROP }, async () => {
    const kit = await interopKit();
    cleanups.push(() => kit.cleanup());
    const { agents } = await makeWorkspace(t.db);
    const agent = agents[0]!;
    const agentProbe = bidiProbe(kit, r1.url, agent.authToken);
    cleanups.push(() => agentProbe.kill());
    agentProbe.send({ updateSelf: { node: { preferredDerp: 7, addresses: [`${agentAddresses(agent.id)[0]}/128`] } } });
    const clientUrl = `${r2.url.replace(/^http/, "ws")}/api/v2/workspaceagents/${agent.id}/coordinate?version=2.0`;
    const clientProbe = bidiProbe(kit, clientUrl, ADMIN_TOKEN);
    cleanups.push(() => clientProbe.kill());
    clientProbe.send({ addTunnel: { id: Buffer.from(agent.id.replaceAll("-", ""), "hex").toString("base64") } });
    clientProbe.send({ updateSelf: { node: { preferredDerp: 8 } } });
    await clientProbe.waitForUpdate((u) => u.kind === "NODE" && u.node?.preferredDerp === 7);
    const heard = await agentProbe.waitForUpdate((u) => u.kind === "NODE" && u.node?.preferredDerp === 8);
    // The request side ends without a disconnect: the client is lost, and its stream ends.
    clientProbe.endRequests();
    assert.equal(await clientProbe.exited, 0, clientProbe.stderr());
    await agentProbe.waitForUpdate((u) => u.kind === "LOST" && u.id === heard.id);
    agentProbe.send({ disconnect: {} });
    assert.equal(await agentProbe.exited, 0, agentProbe.stderr());
  });

  test("a SIGKILLed replica's client is LOST for the agent within the replica timeout, and comes back through the other replica with its resume token", async () => {
    const doomed = await replica();
    const agent = await agentOn(r1);
    const client = await clientOn(doomed, agent.id);
    client.peer.addTunnel(agent.id);
    client.peer.updateDERP(31);
    agent.peer.updateDERP(3);
    await agent.peer.waitForDERP(client.peerId, 31);
    await client.peer.waitForDERP(agent.id, 3);
    await doomed.kill();
    await agent.peer.until(`LOST of ${client.peerId}`, () => agent.peer.heard.get(client.peerId)?.kind === Kind.LOST, LOST_WITHIN_MS);
    const back = await clientOn(r1, agent.id, client.resumeToken);
    assert.equal(back.peerId, client.peerId, "the resume token kept the peer id");
    // No add_tunnel: the tunnel outlived the replica.
    await back.peer.waitForDERP(agent.id, 3);
    back.peer.updateDERP(32);
    await agent.peer.waitForDERP(client.peerId, 32);
  });
});

/** What the probe prints of a peer update: protobuf JSON. */
interface ProbeUpdate {
  id: string;
  kind: string;
  node?: { preferredDerp?: number };
}

/** `agentprobe bidi coder.tailnet.v2.Tailnet/Coordinate`: requests as JSON lines on stdin, responses as JSON lines on stdout. */
function bidiProbe(kit: InteropKit, url: string, token: string) {
  const child = spawn(kit.agentprobe, ["-url", url, "-token", token, "-desc", kit.descriptorSet, "bidi", "coder.tailnet.v2.Tailnet/Coordinate"], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  const updates: ProbeUpdate[] = [];
  const waiters = new Set<() => void>();
  let stderr = "";
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  createInterface({ input: child.stdout }).on("line", (line) => {
    const res = JSON.parse(line) as { peerUpdates?: ProbeUpdate[] };
    updates.push(...(res.peerUpdates ?? []));
    for (const w of waiters) w();
  });
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  return {
    exited,
    stderr: () => stderr,
    send: (req: unknown) => child.stdin.write(`${JSON.stringify(req)}\n`),
    endRequests: () => child.stdin.end(),
    kill: () => child.kill("SIGKILL"),
    waitForUpdate(match: (u: ProbeUpdate) => boolean, timeoutMs = 15_000): Promise<ProbeUpdate> {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = updates.find(match);
          if (found === undefined) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(found);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no such update within ${timeoutMs} ms; got ${JSON.stringify(updates)}; stderr: ${stderr}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
  };
}
