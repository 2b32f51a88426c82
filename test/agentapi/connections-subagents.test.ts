import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import {
  Connection_Action,
  Connection_Type,
  CreateSubAgentRequest_App_SharingLevel,
  CreateSubAgentRequest_DisplayApp,
  UpdateAppStatusRequest_AppStatusState,
} from "../../gen/coder/agent/v2/agent_pb.js";
import { workspaceOwnerChannel, type WorkspaceEvent } from "../../src/db/events.js";
import { getConnectionLog } from "../../src/db/queries/connection-logs.js";
import { subAgentAppSlug } from "../../src/agentapi/subagents.js";
import { startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { recordEvents } from "../support/events.js";
import { dialRawTunnel } from "../support/raw-tunnel.js";
import { assertCut, provisionAgent, rejectsWith, row, uuidBytes, uuidString, withTunnel } from "./support.js";

describe("ReportConnection", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  before(async () => (srv = await startTestServer(t.db)));
  after(() => srv.close());

  test("connect inserts a row; disconnect fills time, code and reason once", async () => {
    const a = await provisionAgent(t.db);
    const id = randomUUID();
    const at = (s: string) => timestampFromDate(new Date(s));
    await withTunnel(srv.url, a.token, async (tun) => {
      await tun.agent.reportConnection({ connection: { id: uuidBytes(id), action: Connection_Action.CONNECT, type: Connection_Type.SSH, timestamp: at("2030-01-01T00:00:00Z"), ip: "localhost" } });
      let log = await getConnectionLog(t.db, { connectionId: id, workspaceId: a.workspaceId, agentName: "main" });
      assert.deepEqual([log?.type, log?.ip, log?.connectTime, log?.disconnectTime, log?.code], ["ssh", "127.0.0.1", new Date("2030-01-01T00:00:00Z"), null, null]);
      await tun.agent.reportConnection({ connection: { id: uuidBytes(id), action: Connection_Action.DISCONNECT, type: Connection_Type.SSH, timestamp: at("2030-01-01T00:05:00Z"), statusCode: 255, reason: "bye" } });
      await tun.agent.reportConnection({ connection: { id: uuidBytes(id), action: Connection_Action.DISCONNECT, type: Connection_Type.SSH, timestamp: at("2030-01-01T00:09:00Z"), statusCode: 1, reason: "again" } });
      log = await getConnectionLog(t.db, { connectionId: id, workspaceId: a.workspaceId, agentName: "main" });
      assert.deepEqual([log?.disconnectTime, log?.code, log?.disconnectReason, log?.workspaceName, log?.workspaceOwnerId], [new Date("2030-01-01T00:05:00Z"), 255, "bye", a.workspaceName, a.ownerId]);
    });
  });

  test("a disconnect without a connect inserts with both times equal; app_name gives the type; a bad IP is stored as NULL", async () => {
    const a = await provisionAgent(t.db);
    const id = randomUUID();
    const when = new Date("2030-05-05T00:00:00Z");
    await withTunnel(srv.url, a.token, (tun) =>
      tun.agent.reportConnection({ connection: { id: uuidBytes(id), action: Connection_Action.DISCONNECT, appName: "port_forwarding", timestamp: timestampFromDate(when), ip: "not an ip" } }),
    );
    const log = await getConnectionLog(t.db, { connectionId: id, workspaceId: a.workspaceId, agentName: "main" });
    assert.deepEqual([log?.type, log?.connectTime, log?.disconnectTime, log?.ip], ["port_forwarding", when, when, null]);
  });

  test("validation: id length, nil id, action, type", async () => {
    const a = await provisionAgent(t.db);
    const id = uuidBytes(randomUUID());
    await withTunnel(srv.url, a.token, async (tun) => {
      await rejectsWith(tun.agent.reportConnection({ connection: { id: new Uint8Array(2), action: Connection_Action.CONNECT, type: Connection_Type.SSH } }), Code.InvalidArgument, "connection id from bytes");
      await rejectsWith(tun.agent.reportConnection({ connection: { id: new Uint8Array(16), action: Connection_Action.CONNECT, type: Connection_Type.SSH } }), Code.InvalidArgument, "connection ID cannot be nil");
      await rejectsWith(tun.agent.reportConnection({ connection: { id, action: Connection_Action.ACTION_UNSPECIFIED, type: Connection_Type.SSH } }), Code.InvalidArgument, "unknown connection action");
      await rejectsWith(tun.agent.reportConnection({ connection: { id, action: Connection_Action.CONNECT, type: Connection_Type.TYPE_UNSPECIFIED } }), Code.InvalidArgument, "unknown connection type");
      await rejectsWith(tun.agent.reportConnection({ connection: { id, action: Connection_Action.CONNECT, appName: "telnet" } }), Code.InvalidArgument, 'unknown connection type "telnet"');
    });
  });
});

describe("sub-agents", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  before(async () => (srv = await startTestServer(t.db)));
  after(() => srv.close());

  test("CreateSubAgent makes a child on the parent's resource whose token dials; its manifest names the parent; apps get hashed slugs", async () => {
    const parent = await provisionAgent(t.db, { connection_timeout_seconds: 77, troubleshooting_url: "https://help" });
    const res = await withTunnel(srv.url, parent.token, (tun) =>
      tun.agent.createSubAgent({
        name: "dev", directory: "/workspaces/app", architecture: "arm64", operatingSystem: "linux",
        displayApps: [CreateSubAgentRequest_DisplayApp.VSCODE, CreateSubAgentRequest_DisplayApp.WEB_TERMINAL],
        apps: [
          { slug: "web", url: "http://localhost:3000", share: CreateSubAgentRequest_App_SharingLevel.AUTHENTICATED, healthcheck: { url: "http://localhost:3000/h", interval: 5, threshold: 3 } },
          { slug: "Bad Slug" },
          { slug: "web" },
        ],
      }),
    );
    const childId = uuidString(res.agent!.id);
    assert.equal(res.agent!.name, "dev");
    assert.deepEqual(res.appCreationErrors.map((e) => [e.index, e.field]), [[1, "slug"], [2, "slug"]]);
    const child = await row<Record<string, unknown>>(
      t.db,
      `SELECT c.parent_id, c.resource_id = p.resource_id AS same_resource, c.architecture, c.directory, c.connection_timeout_seconds,
              c.troubleshooting_url, c.display_apps::text[] AS display_apps, c.auth_token
       FROM workspace_agents c JOIN workspace_agents p ON p.id = c.parent_id WHERE c.id = $1`,
      [childId],
    );
    assert.deepEqual(child, {
      parent_id: parent.agentId, same_resource: true, architecture: "arm64", directory: "/workspaces/app", connection_timeout_seconds: 77,
      troubleshooting_url: "https://help", display_apps: ["vscode", "web_terminal"], auth_token: uuidString(res.agent!.authToken),
    });
    const app = await row<{ slug: string; health: string; sharing_level: string }>(t.db, "SELECT slug, health::text, sharing_level::text FROM workspace_apps WHERE agent_id = $1", [childId]);
    assert.deepEqual(app, { slug: subAgentAppSlug("dev", "web"), health: "initializing", sharing_level: "authenticated" });
    assert.match(app.slug, /^[0-9a-v]{8}-web$/);

    const manifest = await withTunnel(srv.url, uuidString(res.agent!.authToken), (tun) => tun.agent.getManifest({}));
    assert.equal(uuidString(manifest.parentId!), parent.agentId);
    assert.equal(manifest.agentName, "dev");
  });

  test("ListSubAgents lists live children with their tokens; DeleteSubAgent cuts the child's tunnel and its next dial is 401", async () => {
    const parent = await provisionAgent(t.db);
    await withTunnel(srv.url, parent.token, async (tun) => {
      const a = await tun.agent.createSubAgent({ name: "one", architecture: "amd64", operatingSystem: "linux" });
      const b = await tun.agent.createSubAgent({ name: "two", architecture: "amd64", operatingSystem: "linux" });
      const listed = await tun.agent.listSubAgents({});
      assert.deepEqual(listed.agents.map((s) => [s.name, uuidString(s.authToken)]).sort(), [["one", uuidString(a.agent!.authToken)], ["two", uuidString(b.agent!.authToken)]]);

      const childToken = uuidString(a.agent!.authToken);
      const child = await dialRawTunnel(srv.url, childToken);
      try {
        await child.agent.getManifest({});
        await tun.agent.deleteSubAgent({ id: a.agent!.id });
        await assertCut(child, "workspace agent deleted");
      } finally {
        child.ws.close();
      }
      await assert.rejects(dialRawTunnel(srv.url, childToken), /dial refused: 401/);
      assert.deepEqual((await tun.agent.listSubAgents({})).agents.map((s) => s.name), ["two"]);
      // Deleting again changes nothing and is no error.
      await tun.agent.deleteSubAgent({ id: a.agent!.id });
      await rejectsWith(tun.agent.deleteSubAgent({ id: new Uint8Array(1) }), Code.InvalidArgument, "parse sub agent ID");
    });
  });

  test("validation: name, display apps, a duplicate name; a pre-created sub-agent of another parent is NotFound, as an unknown id", async () => {
    const parent = await provisionAgent(t.db);
    const other = await provisionAgent(t.db);
    const foreign = await withTunnel(srv.url, other.token, (tun) => tun.agent.createSubAgent({ name: "theirs", architecture: "amd64", operatingSystem: "linux" }));
    await withTunnel(srv.url, parent.token, async (tun) => {
      await rejectsWith(tun.agent.createSubAgent({ name: "bad name!", architecture: "amd64", operatingSystem: "linux" }), Code.InvalidArgument, "name:");
      await rejectsWith(tun.agent.createSubAgent({ name: "ok", displayApps: [99 as CreateSubAgentRequest_DisplayApp] }), Code.InvalidArgument, "display_apps[0]");
      await rejectsWith(tun.agent.createSubAgent({ name: "main", architecture: "amd64", operatingSystem: "linux" }), Code.AlreadyExists);
      await rejectsWith(tun.agent.createSubAgent({ id: foreign.agent!.id }), Code.NotFound, "not found");
      await rejectsWith(tun.agent.createSubAgent({ id: uuidBytes(randomUUID()) }), Code.NotFound);
    });
  });

  test("CreateSubAgent with the id of a pre-created child updates its display apps and directory", async () => {
    const parent = await provisionAgent(t.db);
    await withTunnel(srv.url, parent.token, async (tun) => {
      const made = await tun.agent.createSubAgent({ name: "pre", directory: "/old", architecture: "amd64", operatingSystem: "linux" });
      const again = await tun.agent.createSubAgent({ id: made.agent!.id, directory: "/new", displayApps: [CreateSubAgentRequest_DisplayApp.SSH_HELPER] });
      assert.deepEqual([again.agent!.name, uuidString(again.agent!.authToken)], ["pre", uuidString(made.agent!.authToken)]);
      const r = await row(t.db, "SELECT directory, display_apps::text[] AS display_apps FROM workspace_agents WHERE id = $1", [uuidString(made.agent!.id)]);
      assert.deepEqual(r, { directory: "/new", display_apps: ["ssh_helper"] });
    });
  });
});

describe("UpdateAppStatus", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  before(async () => (srv = await startTestServer(t.db)));
  after(() => srv.close());

  test("stores the status and publishes agt_app_status_update", async () => {
    const a = await provisionAgent(t.db, { apps: [{ slug: "ai", url: "http://localhost:1" }] });
    const events = await recordEvents<WorkspaceEvent>(t.db.pubsub, workspaceOwnerChannel(a.ownerId));
    try {
      const message = "m".repeat(158);
      await withTunnel(srv.url, a.token, (tun) => tun.agent.updateAppStatus({ slug: "ai", state: UpdateAppStatusRequest_AppStatusState.WORKING, message: `\n${message}\t`, uri: "" }));
      const e = await events.next((e) => e.kind === "agt_app_status_update");
      assert.deepEqual(e, { kind: "agt_app_status_update", workspace_id: a.workspaceId, agent_id: a.agentId });
      const s = await row(t.db, "SELECT s.state::text, s.message, s.uri, s.workspace_id FROM workspace_app_statuses s JOIN workspace_apps p ON p.id = s.app_id WHERE p.agent_id = $1", [a.agentId]);
      assert.deepEqual(s, { state: "working", message, uri: null, workspace_id: a.workspaceId });
    } finally {
      events.stop();
    }
  });

  test("a message over 160 characters, an unknown state, an unknown slug", async () => {
    const a = await provisionAgent(t.db, { apps: [{ slug: "ai", url: "http://localhost:1" }] });
    await withTunnel(srv.url, a.token, async (tun) => {
      await rejectsWith(tun.agent.updateAppStatus({ slug: "ai", message: "m".repeat(161) }), Code.InvalidArgument, "Message is too long.");
      await rejectsWith(tun.agent.updateAppStatus({ slug: "ai", state: 9 as UpdateAppStatusRequest_AppStatusState }), Code.InvalidArgument, "Invalid state provided.");
      await rejectsWith(tun.agent.updateAppStatus({ slug: "nope" }), Code.NotFound, "Failed to get workspace app.");
    });
  });
});
