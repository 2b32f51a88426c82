import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Code, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Agent } from "../../gen/coder/agent/v2/agent_pb.js";
import { LISTENER_APPLICATION_NAME } from "../../src/db/engine-pg.js";
import type { Database } from "../../src/db/database.js";
import { softDeleteSubAgent } from "../../src/db/queries/sub-agents.js";
import { deleteWorkspace } from "../../src/provision/provision.js";
import { makeBuild, makeWorkspace, type WorkspaceFixture } from "../support/fixtures.js";
import { eventually, startTestServer, type TestServer } from "../support/agent-server.js";
import { availableEngines, forEachEngine } from "../support/database.js";
import { dialRawTunnel, type RawTunnel } from "../support/raw-tunnel.js";
import { connectErrorOf } from "../support/connect-error.js";
import { insertAgent } from "../../src/db/queries/agents.js";
import { randomUUID } from "node:crypto";
import pg from "pg";

/**
 * A sweep far past any test's length: a tunnel cut here was cut by the identity event, not by
 * the periodic backstop.
 */
const NO_SWEEP = { agentUpdateIntervalMs: 600_000 };

/** An Agent client on the plain port, authenticated by `token` per call. */
function plainAgent(url: string, token: string) {
  const auth: Interceptor = (next) => (req) => {
    req.header.set("Coder-Session-Token", token);
    return next(req);
  };
  return createClient(Agent, createConnectTransport({ baseUrl: url, httpVersion: "1.1", interceptors: [auth] }));
}

async function assertCut(tunnel: RawTunnel, reason: string): Promise<void> {
  assert.deepEqual(await tunnel.closed, { code: 1001, reason });
}

async function assertDialRefused(srv: TestServer, token: string, status: number): Promise<void> {
  await assert.rejects(dialRawTunnel(srv.url, token), new RegExp(`dial refused: ${status}`));
}

forEachEngine((t) => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer(t.db, NO_SWEEP);
  });
  after(() => srv.close());

  const dialed = async (ws: WorkspaceFixture, i = 0) => {
    const tunnel = await dialRawTunnel(srv.url, ws.agents[i]!.authToken);
    await tunnel.agent.getAnnouncementBanners({});
    return tunnel;
  };

  test("deleting the workspace cuts its live tunnels at once; the agent's next dial is 401", async () => {
    const ws = await makeWorkspace(t.db, { agents: ["one", "two"] });
    const [one, two] = [await dialed(ws, 0), await dialed(ws, 1)];
    await deleteWorkspace(t.db, { workspace: ws.workspace.id });
    await assertCut(one, "workspace agent deleted");
    await assertCut(two, "workspace agent deleted");
    await assertDialRefused(srv, ws.agents[0]!.authToken, 401);
  });

  test("deleting an agent cuts its tunnel and only its tunnel", async () => {
    const ws = await makeWorkspace(t.db);
    const parent = ws.agents[0]!;
    const sub = await insertAgent(t.db, {
      id: randomUUID(), resourceId: parent.resourceId, name: `sub-${randomUUID().slice(0, 6)}`, authToken: randomUUID(),
      architecture: "amd64", operatingSystem: "linux", parentId: parent.id, now: new Date(),
    });
    const parentTunnel = await dialed(ws);
    const subTunnel = await dialRawTunnel(srv.url, sub.authToken);
    await softDeleteSubAgent(t.db, { id: sub.id, parentId: parent.id, now: new Date() });
    await assertCut(subTunnel, "workspace agent deleted");
    await parentTunnel.agent.getAnnouncementBanners({});
    parentTunnel.ws.close();
  });

  test("a new build cuts the old build's tunnel at once with 1001 build is outdated", async () => {
    const ws = await makeWorkspace(t.db);
    const tunnel = await dialed(ws);
    await makeBuild(t.db, ws.workspace, ws.owner.id, { agents: ["main"] });
    await assertCut(tunnel, "build is outdated");
    await assertDialRefused(srv, ws.agents[0]!.authToken, 403);
  });

  test("a revoked token cuts the tunnel and ends the plain port's cached lookup", async () => {
    const ws = await makeWorkspace(t.db);
    const token = ws.agents[0]!.authToken;
    const tunnel = await dialed(ws);
    const plain = plainAgent(srv.url, token);
    // Twice: the second call is served from the cache.
    await plain.getAnnouncementBanners({});
    await plain.getAnnouncementBanners({});
    await t.db.query("UPDATE workspace_agents SET auth_token = $2 WHERE id = $1", [ws.agents[0]!.id, randomUUID()]);
    // The tunnel's cut says the event arrived; the cache heard the same event.
    await assertCut(tunnel, "agent token revoked");
    assert.equal((await connectErrorOf(plain.getAnnouncementBanners({}))).code, Code.Unauthenticated);
    await assertDialRefused(srv, token, 401);
  });
});

describe("identity events with the LISTEN connection lost", { skip: !availableEngines().includes("pg") }, () => {
  test("while the listener is down every RPC re-reads: a deleted agent's next RPC is NotFound", async () => {
    const { createTestDatabase } = await import("../support/database.js");
    const tdb = await createTestDatabase("pg");
    const db = await tdb.open();
    // ALTER DATABASE … ALLOW_CONNECTIONS can't run inside the database it closes.
    const admin = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
    await admin.connect();
    const name = new URL(tdb.options.databaseUrl!).pathname.slice(1);
    const srv = await startTestServer(db, NO_SWEEP);
    try {
      const ws = await makeWorkspace(db);
      const tunnel = await dialRawTunnel(srv.url, ws.agents[0]!.authToken);
      await tunnel.agent.getAnnouncementBanners({});
      // No new connection may be made, so the listener stays down; existing ones keep working.
      await admin.query(`ALTER DATABASE "${name}" WITH ALLOW_CONNECTIONS false`);
      try {
        await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2", [name, LISTENER_APPLICATION_NAME]);
        await eventually(async () => (db.pubsub.isListening() ? undefined : true), 5_000, "the listener noticed it was lost");
        // Through the server's own pool, whose connections outlive the closing.
        await db.query("UPDATE workspace_agents SET deleted = true WHERE id = $1", [ws.agents[0]!.id]);
        const err = await connectErrorOf(tunnel.agent.getAnnouncementBanners({}));
        assert.equal(err.code, Code.NotFound, err.rawMessage);
        await assertCut(tunnel, "workspace agent deleted");
      } finally {
        await admin.query(`ALTER DATABASE "${name}" WITH ALLOW_CONNECTIONS true`);
      }
    } finally {
      await admin.end();
      await srv.close();
      await tdb.destroy();
    }
  });
});

describe("identity events across two servers on one PostgreSQL", { skip: !availableEngines().includes("pg") }, () => {
  let a: TestServer;
  let b: TestServer;
  let dbA: Database;
  let dbB: Database;
  let destroy: () => Promise<void>;
  before(async () => {
    const { createTestDatabase } = await import("../support/database.js");
    const tdb = await createTestDatabase("pg");
    destroy = () => tdb.destroy();
    [dbA, dbB] = [await tdb.open(), await tdb.open()];
    [a, b] = [await startTestServer(dbA, NO_SWEEP), await startTestServer(dbB, NO_SWEEP)];
  });
  after(async () => {
    await a.close();
    await b.close();
    await destroy();
  });

  test("a workspace deleted through one replica's database cuts the tunnel the other serves", async () => {
    const ws = await makeWorkspace(dbB);
    const tunnel = await dialRawTunnel(a.url, ws.agents[0]!.authToken);
    await tunnel.agent.getAnnouncementBanners({});
    await deleteWorkspace(dbB, { workspace: ws.workspace.id });
    await assertCut(tunnel, "workspace agent deleted");
    await assert.rejects(dialRawTunnel(b.url, ws.agents[0]!.authToken), /dial refused: 401/);
  });

  test("a new build written by one replica cuts the other's tunnel", async () => {
    const ws = await makeWorkspace(dbA);
    const tunnel = await dialRawTunnel(b.url, ws.agents[0]!.authToken);
    await makeBuild(dbA, ws.workspace, ws.owner.id, { agents: ["main"] });
    await assertCut(tunnel, "build is outdated");
  });
});
