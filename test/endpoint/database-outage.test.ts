import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { Code, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import pg from "pg";
import { Agent } from "../../gen/coder/agent/v2/agent_pb.js";
import { DATABASE_UNAVAILABLE_MESSAGE } from "../../src/agentapi/rpc-errors.js";
import { getAgentById } from "../../src/db/queries/agents.js";
import { makeWorkspace } from "../support/fixtures.js";
import { eventually, startTestServer } from "../support/agent-server.js";
import { availableEngines, createTestDatabase } from "../support/database.js";
import { connectErrorOf } from "../support/connect-error.js";
import { rawGet } from "../support/http.js";
import { dialRawTunnel } from "../support/raw-tunnel.js";

/** A tick every 100 ms, inactive after 400 ms: an outage of many ticks outlasts the inactive timeout. */
const UPDATE_MS = 100;
const INACTIVE_MS = 400;
/** What must never reach a caller: the database's address or the driver's words. */
const LEAK = /127\.0\.0\.1|5432|ECONNREFUSED|accepting connections|terminat|postgres/i;

describe("a database outage (a PostgreSQL database of its own, closed to connections)", { skip: !availableEngines().includes("pg") }, () => {
  test("tunnels stay, RPCs answer Unavailable with a generic message, connection times catch up", async () => {
    const tdb = await createTestDatabase("pg");
    const db = await tdb.open({ connectTimeoutMs: 1_000 });
    const name = new URL(tdb.options.databaseUrl!).pathname.slice(1);
    // ALTER DATABASE … ALLOW_CONNECTIONS can't run inside the database it closes.
    const admin = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
    await admin.connect();
    const srv = await startTestServer(db, { agentUpdateIntervalMs: UPDATE_MS, agentInactiveTimeoutMs: INACTIVE_MS });
    let reopened = false;
    const reopen = async () => {
      if (reopened) return;
      reopened = true;
      await admin.query(`ALTER DATABASE "${name}" WITH ALLOW_CONNECTIONS true`);
    };
    try {
      const ws = await makeWorkspace(db);
      const token = ws.agents[0]!.authToken;
      const tunnel = await dialRawTunnel(srv.url, token);
      await tunnel.agent.getAnnouncementBanners({});
      let pings = 0;
      tunnel.ws.on("ping", () => pings++);

      await admin.query(`ALTER DATABASE "${name}" WITH ALLOW_CONNECTIONS false`);
      await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", [name]);
      await eventually(async () => (db.pubsub.isListening() ? undefined : true), 5_000, "the listener noticed the outage");

      const inTunnel = await connectErrorOf(tunnel.agent.getAnnouncementBanners({}));
      assert.equal(Code[inTunnel.code], Code[Code.Unavailable], inTunnel.rawMessage);
      assert.equal(inTunnel.rawMessage, DATABASE_UNAVAILABLE_MESSAGE);

      const auth: Interceptor = (next) => (req) => {
        req.header.set("Coder-Session-Token", token);
        return next(req);
      };
      const plain = createClient(Agent, createConnectTransport({ baseUrl: srv.url, httpVersion: "1.1", interceptors: [auth] }));
      const onPlain = await connectErrorOf(plain.getAnnouncementBanners({}));
      assert.equal(Code[onPlain.code], Code[Code.Unavailable], onPlain.rawMessage);
      assert.doesNotMatch(onPlain.rawMessage, LEAK);

      const dial = await rawGet(`${srv.url}/api/v2/workspaceagents/me/rpc`, { "Coder-Session-Token": token });
      assert.equal(dial.status, 503);
      assert.doesNotMatch(dial.body, LEAK);
      const ready = await rawGet(`${srv.url}/readyz`, {}, { upgrade: false });
      assert.equal(ready.status, 503);
      assert.doesNotMatch(ready.body, LEAK);

      // Pings keep flowing past twice the inactive timeout: the tunnel lives on pongs, not on the database.
      const wanted = pings + (2 * INACTIVE_MS) / UPDATE_MS;
      while (pings < wanted) await once(tunnel.ws, "ping");
      assert.equal(tunnel.ws.readyState, tunnel.ws.OPEN);

      const reopenedAt = new Date();
      await reopen();
      // The next refreshes land: the agent reads as connected since the outage, never disconnected.
      const row = await eventually(async () => {
        const agent = await getAgentById(db, ws.agents[0]!.id).catch(() => undefined);
        return agent?.lastConnectedAt && agent.lastConnectedAt > reopenedAt ? agent : undefined;
      }, 15_000, "last_connected_at past the outage");
      assert.equal(row.disconnectedAt, null);
      assert.equal(row.lastConnectedReplicaId, srv.server.replicaId);
      await eventually(() => tunnel.agent.getAnnouncementBanners({}).then(() => true, () => undefined), 15_000, "RPCs served again");
      assert.equal(tunnel.ws.readyState, tunnel.ws.OPEN);
      tunnel.ws.close();
    } finally {
      await reopen();
      await admin.end();
      await srv.close();
      await tdb.destroy();
    }
  });
});
