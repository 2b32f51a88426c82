/**
 * The Tailnet service's coordination RPCs through a real server: an agent's Coordinate stream
 * through its tunnel (the SDK) and on the plain port (h2c with its token), meeting a client peer
 * of another coordinator replica on the same database; RefreshResumeToken and WorkspaceUpdates
 * for a client identity (the context the client endpoint sets) and not on agent connections.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createContextValues, createHandlerContext } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  CoordinateResponse_PeerUpdate_Kind as Kind,
  RefreshResumeTokenRequestSchema,
  Tailnet,
  type CoordinateResponse,
} from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { uuidFromBytes, uuidToBytes } from "../../src/agentapi/uuid-bytes.js";
import { connectAgent } from "../../src/client/index.js";
import { silentLogger } from "../../src/log.js";
import { agentAddresses } from "../../src/tailnet/agent-addresses.js";
import { coordinationHandlers } from "../../src/tailnet/coordination-handlers.js";
import { Coordinator } from "../../src/tailnet/coordinator.js";
import { clientIdentityKey } from "../../src/tailnet/peer-identity.js";
import { ResumeTokens } from "../../src/tailnet/resume-token.js";
import { startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { makeWorkspace } from "../support/fixtures.js";
import { RequestQueue, TestPeer } from "../support/tailnet-peer.js";

/** Reads responses until one holds an update matching `match`. */
async function nextUpdate(responses: AsyncIterator<CoordinateResponse>, match: (u: CoordinateResponse["peerUpdates"][number]) => boolean) {
  for (;;) {
    const { value, done } = await responses.next();
    if (done) throw new Error("stream ended before the update came");
    const found = value.peerUpdates.find(match);
    if (found !== undefined) return found;
  }
}

// Both HTTP/2 servers a tunnel may have (`--tunnel-http2`): the bidi stream must work on each.
for (const tunnelHttp2 of ["node", "agentgate"] as const)
describe(`coordination RPCs (--tunnel-http2 ${tunnelHttp2})`, () => {
  const t = useTestDatabase();
  let srv: TestServer;
  let clients: Coordinator;
  before(async () => {
    srv = await startTestServer(t.db, { tunnelHttp2 });
    // A second replica on the same database stands in for the client endpoint's peers.
    clients = await Coordinator.start({ db: t.db, replicaId: randomUUID(), logger: silentLogger() });
  });
  after(async () => {
    await clients.close();
    await srv.close();
  });

  test("an agent's Coordinate stream through its tunnel meets a client, and ends after the agent's disconnect", async () => {
    const ws = await makeWorkspace(t.db);
    const agentId = ws.agents[0]!.id;
    const conn = connectAgent({ url: srv.url, token: ws.agents[0]!.authToken });
    try {
      const client = TestPeer.client(clients, agentId);
      client.addTunnel(agentId);
      client.updateDERP(21);
      const out = new RequestQueue();
      const responses = conn.tailnet.coordinate(out)[Symbol.asyncIterator]();
      out.push({ updateSelf: { node: { preferredDerp: 7, addresses: [`${agentAddresses(agentId)[1]}/128`] } } });
      const heard = await nextUpdate(responses, (u) => u.kind === Kind.NODE);
      assert.equal(uuidFromBytes(heard.id, "id"), client.id);
      assert.equal(heard.node?.preferredDerp, 21);
      await client.waitForDERP(agentId, 7);
      out.push({ disconnect: {} });
      assert.equal((await responses.next()).done, true, "the server hung up");
      await client.waitForKind(agentId, Kind.DISCONNECTED, "graceful disconnect");
    } finally {
      await conn.close();
    }
  });

  test("an agent that claims another agent's address gets PermissionDenied, and its client sees it LOST", async () => {
    const ws = await makeWorkspace(t.db);
    const agentId = ws.agents[0]!.id;
    const conn = connectAgent({ url: srv.url, token: ws.agents[0]!.authToken });
    try {
      const client = TestPeer.client(clients, agentId);
      client.addTunnel(agentId);
      const out = new RequestQueue();
      const responses = conn.tailnet.coordinate(out)[Symbol.asyncIterator]();
      out.push({ updateSelf: { node: { preferredDerp: 1, addresses: [`${agentAddresses(agentId)[0]}/128`] } } });
      await client.waitForDERP(agentId, 1);
      out.push({ updateSelf: { node: { addresses: [`${agentAddresses(randomUUID())[0]}/128`] } } });
      await assert.rejects(
        (async () => {
          for (;;) if ((await responses.next()).done) return;
        })(),
        (err: unknown) => err instanceof ConnectError && err.code === Code.PermissionDenied && /invalid node address/.test(err.rawMessage),
      );
      await client.waitForKind(agentId, Kind.LOST);
    } finally {
      await conn.close();
    }
  });

  test("Coordinate on the plain port over h2c with the agent token; a dropped stream is LOST", async () => {
    const ws = await makeWorkspace(t.db);
    const agentId = ws.agents[0]!.id;
    const tailnet = createClient(Tailnet, createGrpcTransport({ baseUrl: srv.url }));
    const client = TestPeer.client(clients, agentId);
    client.addTunnel(agentId);
    client.updateDERP(3);
    const out = new RequestQueue();
    const abort = new AbortController();
    const responses = tailnet.coordinate(out, { headers: { "Coder-Session-Token": ws.agents[0]!.authToken }, signal: abort.signal })[Symbol.asyncIterator]();
    out.push({ updateSelf: { node: { preferredDerp: 4 } } });
    const heard = await nextUpdate(responses, (u) => u.kind === Kind.NODE);
    assert.equal(heard.node?.preferredDerp, 3);
    await client.waitForDERP(agentId, 4);
    abort.abort();
    await client.waitForKind(agentId, Kind.LOST);
  });

  test("RefreshResumeToken is not served on an agent connection", async () => {
    const ws = await makeWorkspace(t.db);
    const conn = connectAgent({ url: srv.url, token: ws.agents[0]!.authToken });
    try {
      await assert.rejects(conn.tailnet.refreshResumeToken({}), (err: unknown) => err instanceof ConnectError && err.code === Code.Unimplemented);
    } finally {
      await conn.close();
    }
  });

  describe("for a client connection", () => {
    const ownerId = randomUUID();
    const identity = { peerId: randomUUID(), agentId: randomUUID(), ownerId };
    const context = (method: (typeof Tailnet.method)[keyof typeof Tailnet.method], signal?: AbortSignal) =>
      createHandlerContext({
        service: Tailnet,
        method,
        protocolName: "connect",
        requestMethod: "POST",
        url: `http://test/${Tailnet.typeName}/${method.name}`,
        requestSignal: signal,
        contextValues: createContextValues().set(clientIdentityKey, identity),
      });

    test("RefreshResumeToken gives a token for the client's peer id, to refresh halfway through its 24 h", async () => {
      const resumeTokens = ResumeTokens.fromDatabase(t.db);
      const handlers = coordinationHandlers({ coordinator: clients, resumeTokens, db: t.db });
      const res = await handlers.refreshResumeToken(create(RefreshResumeTokenRequestSchema), context(Tailnet.method.refreshResumeToken));
      assert.equal(await resumeTokens.verify(res.token!), identity.peerId);
      assert.equal(Number(res.refreshIn!.seconds), 12 * 3600);
      const expiresIn = Number(res.expiresAt!.seconds) * 1000 - Date.now();
      assert.ok(expiresIn > 23.9 * 3600_000 && expiresIn <= 24 * 3600_000, `expires in ${expiresIn} ms`);
    });

    test("WorkspaceUpdates of another owner is PermissionDenied", async () => {
      const handlers = coordinationHandlers({ coordinator: clients, resumeTokens: ResumeTokens.fromDatabase(t.db), db: t.db });
      const stream = handlers.workspaceUpdates({ workspaceOwnerId: uuidToBytes(randomUUID()) } as never, context(Tailnet.method.workspaceUpdates));
      await assert.rejects(stream[Symbol.asyncIterator]().next(), (err: unknown) => err instanceof ConnectError && err.code === Code.PermissionDenied);
    });
  });
});
