import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  AgentStatus,
  AppSpec_OpenIn,
  AppSpec_SharingLevel,
  ControlService,
  DisplayApp,
  LifecycleState,
  type WatchAgentsResponse,
} from "../../gen/agentgate/control/v1/control_pb.js";
import { Agent } from "../../gen/coder/agent/v2/agent_pb.js";
import { createControlClient, type ControlClient } from "../../src/cli/control-client.js";
import { connectAgent } from "../../src/client/index.js";
import { getAgentByToken } from "../support/queries.js";
import { listAppsByAgentId } from "../../src/db/queries/apps.js";
import { listDevcontainersByAgentId } from "../../src/db/queries/devcontainers.js";
import { listMetadata } from "../../src/db/queries/metadata.js";
import { getMemoryMonitor, listVolumeMonitors } from "../../src/db/queries/resource-monitors.js";
import { listScriptsByAgentId } from "../../src/db/queries/scripts.js";
import { startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { connectErrorOf } from "../support/connect-error.js";
import { nextMatching } from "../support/stream.js";

const ADMIN_TOKEN = "test-admin-token";

/** A username no other test in this file uses. */
function owner(): string {
  return `u-${randomUUID().slice(0, 8)}`;
}

describe("control API", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  let control: ControlClient;
  before(async () => {
    srv = await startTestServer(t.db, { adminToken: ADMIN_TOKEN, agentUpdateIntervalMs: 200, agentInactiveTimeoutMs: 1_000 });
    control = createControlClient({ url: srv.url, adminToken: ADMIN_TOKEN });
  });
  after(async () => {
    await srv.close();
  });

  test("CreateWorkspace makes build 1 with one agent per spec agent, each with a token that authenticates", async () => {
    const alice = owner();
    const res = await control.createWorkspace({ owner: alice, name: "dev", spec: { agents: [{ name: "main" }, { name: "gpu" }] } });
    assert.equal(res.buildNumber, 1);
    assert.deepEqual(res.agents.map((a) => a.name), ["main", "gpu"]);
    const row = await getAgentByToken(t.db, res.agents[1]!.token);
    assert.deepEqual(
      [row?.agent.id, row?.owner.username, row?.workspace.id, row?.buildId],
      [res.agents[1]!.id, alice, res.workspaceId, res.buildId],
    );
  });

  test("CreateWorkspace stores the spec message's apps, scripts, metadata, devcontainers, monitors and defaults", async () => {
    const res = await control.createWorkspace({
      owner: owner(),
      name: "full",
      spec: {
        agents: [{
          name: "dev", architecture: "arm64", directory: "/home/coder", env: { EDITOR: "vim" }, connectionTimeoutSeconds: 120,
          displayApps: { apps: [DisplayApp.WEB_TERMINAL] },
          apps: [{
            slug: "code", url: "http://localhost:8080", sharingLevel: AppSpec_SharingLevel.PUBLIC, openIn: AppSpec_OpenIn.TAB,
            healthcheck: { url: "http://localhost:8080/healthz", threshold: 6 },
          }],
          scripts: [{ displayName: "Install", script: "make install", runOnStart: true, timeoutSeconds: 600 }],
          metadata: [{ key: "cpu", script: "top -bn1" }],
          devcontainers: [{ workspaceFolder: "/src" }],
          resourceMonitors: { memory: { threshold: 80 }, volumes: [{ path: "/home", enabled: false, threshold: 90 }] },
        }],
      },
    });
    const id = res.agents[0]!.id;
    const row = await getAgentByToken(t.db, res.agents[0]!.token);
    assert.deepEqual(
      {
        agent: [row?.agent.operatingSystem, row?.agent.architecture, row?.agent.directory, row?.agent.environmentVariables, row?.agent.connectionTimeoutSeconds, row?.agent.displayApps],
        apps: (await listAppsByAgentId(t.db, id)).map((a) => [a.slug, a.sharingLevel, a.openIn, a.healthcheckInterval, a.healthcheckThreshold]),
        scripts: (await listScriptsByAgentId(t.db, id)).map((s) => [s.displayName, s.runOnStart, s.timeoutSeconds]),
        metadata: (await listMetadata(t.db, id)).map((m) => [m.key, m.interval, m.timeout]),
        devcontainers: (await listDevcontainersByAgentId(t.db, id)).map((d) => d.workspaceFolder),
        memory: [(await getMemoryMonitor(t.db, id))?.enabled, (await getMemoryMonitor(t.db, id))?.threshold],
        volumes: (await listVolumeMonitors(t.db, id)).map((v) => [v.path, v.enabled, v.threshold]),
      },
      {
        agent: ["linux", "arm64", "/home/coder", { EDITOR: "vim" }, 120, ["web_terminal"]],
        apps: [["code", "public", "tab", 5, 6]],
        scripts: [["Install", true, 600]],
        metadata: [["cpu", 10, 3]],
        devcontainers: ["/src"],
        memory: [true, 80],
        volumes: [["/home", false, 90]],
      },
    );
  });

  test("CreateWorkspace of a taken name is AlreadyExists, with provisioning's message", async () => {
    const bob = owner();
    await control.createWorkspace({ owner: bob, name: "dev", spec: { agents: [{ name: "main" }] } });
    const err = await connectErrorOf(control.createWorkspace({ owner: bob, name: "dev", spec: { agents: [{ name: "main" }] } }));
    assert.deepEqual([err.code, err.rawMessage], [Code.AlreadyExists, `workspace ${bob}/dev already exists`]);
  });

  test("CreateWorkspace with an invalid spec is InvalidArgument naming the field", async () => {
    const err = await connectErrorOf(control.createWorkspace({ owner: owner(), name: "dev", spec: { agents: [{ name: "-bad" }] } }));
    assert.equal(err.code, Code.InvalidArgument);
    assert.match(err.rawMessage, /^agents\[0\]\.name: "-bad" must be/);
  });

  test("CreateWorkspace without agents is InvalidArgument", async () => {
    const err = await connectErrorOf(control.createWorkspace({ owner: owner(), name: "dev" }));
    assert.deepEqual([err.code, err.rawMessage], [Code.InvalidArgument, "a build needs at least one agent"]);
  });

  test("BuildWorkspace by owner/name and by id makes the next builds with new tokens", async () => {
    const carol = owner();
    const created = await control.createWorkspace({ owner: carol, name: "ws", spec: { agents: [{ name: "main" }] } });
    const second = await control.buildWorkspace({ workspace: `${carol}/ws`, spec: { agents: [{ name: "main" }] } });
    const third = await control.buildWorkspace({ workspace: created.workspaceId, spec: { agents: [{ name: "main" }] } });
    assert.deepEqual([second.workspaceId, second.buildNumber, third.buildNumber], [created.workspaceId, 2, 3]);
    assert.notEqual(second.agents[0]!.token, created.agents[0]!.token);
    const old = await getAgentByToken(t.db, created.agents[0]!.token);
    assert.equal(old?.latestBuildId, third.buildId);
  });

  test("BuildWorkspace of an unknown workspace is NotFound", async () => {
    const err = await connectErrorOf(control.buildWorkspace({ workspace: `${owner()}/none`, spec: { agents: [{ name: "main" }] } }));
    assert.equal(err.code, Code.NotFound);
    assert.match(err.rawMessage, /^workspace ".*\/none" not found$/);
  });

  test("BuildWorkspace without a spec builds the latest build's spec again, apps, scripts and metadata included", async () => {
    const dana = owner();
    const spec = {
      agents: [
        { name: "main", apps: [{ slug: "web", url: "http://127.0.0.1:3999", healthcheck: { url: "http://127.0.0.1:3999/", intervalSeconds: 2, threshold: 2 } }], scripts: [{ displayName: "Hello", script: "echo hi", runOnStart: true }], metadata: [{ key: "load", script: "cat /proc/loadavg", intervalSeconds: 2 }] },
        { name: "gpu", resourceMonitors: { memory: { threshold: 80 } } },
      ],
    };
    await control.createWorkspace({ owner: dana, name: "ws", spec });
    const first = await control.getWorkspaceSpec({ workspace: `${dana}/ws` });
    const rebuilt = await control.buildWorkspace({ workspace: `${dana}/ws` });
    assert.deepEqual([rebuilt.buildNumber, rebuilt.agents.map((a) => a.name)], [2, ["main", "gpu"]]);
    const second = await control.getWorkspaceSpec({ workspace: rebuilt.workspaceId });
    assert.deepEqual([second.owner, second.workspaceName, second.buildNumber], [dana, "ws", 2]);
    assert.deepEqual(second.spec, first.spec);
    const [web] = await listAppsByAgentId(t.db, rebuilt.agents[0]!.id);
    assert.deepEqual([web?.slug, web?.healthcheckInterval], ["web", 2]);
    assert.deepEqual((await listScriptsByAgentId(t.db, rebuilt.agents[0]!.id)).map((s) => s.script), ["echo hi"]);
    assert.equal((await getMemoryMonitor(t.db, rebuilt.agents[1]!.id))?.threshold, 80);
  });

  test("BuildWorkspace with an empty spec is still InvalidArgument: a build needs an agent", async () => {
    const created = await control.createWorkspace({ owner: owner(), name: "ws", spec: { agents: [{ name: "main" }] } });
    const err = await connectErrorOf(control.buildWorkspace({ workspace: created.workspaceId, spec: { agents: [] } }));
    assert.deepEqual([err.code, err.rawMessage], [Code.InvalidArgument, "a build needs at least one agent"]);
  });

  test("GetWorkspaceSpec of an unknown workspace is NotFound", async () => {
    const err = await connectErrorOf(control.getWorkspaceSpec({ workspace: `${owner()}/none` }));
    assert.equal(err.code, Code.NotFound);
  });

  test("DeleteWorkspace removes the workspace's agents from ListAgents; deleting again is NotFound", async () => {
    const dave = owner();
    const created = await control.createWorkspace({ owner: dave, name: "box", spec: { agents: [{ name: "a1" }] } });
    const deleted = await control.deleteWorkspace({ workspace: `${dave}/box` });
    assert.equal(deleted.workspaceId, created.workspaceId);
    assert.deepEqual((await control.listAgents({ owner: dave })).agents, []);
    const again = await connectErrorOf(control.deleteWorkspace({ workspace: `${dave}/box` }));
    assert.equal(again.code, Code.NotFound);
  });

  test("ListAgents gives the latest build's agents with computed status, lifecycle and no connection time yet", async () => {
    const erin = owner();
    const created = await control.createWorkspace({ owner: erin, name: "dev", spec: { agents: [{ name: "main" }] } });
    await control.buildWorkspace({ workspace: `${erin}/dev`, spec: { agents: [{ name: "next" }] } });
    const { agents } = await control.listAgents({ owner: erin });
    assert.deepEqual(
      agents.map((a) => [a.workspaceId, a.owner, a.workspaceName, a.agentName, a.buildNumber, a.status, a.lifecycleState, a.lastConnectedAt]),
      [[created.workspaceId, erin, "dev", "next", 2, AgentStatus.CONNECTING, LifecycleState.CREATED, undefined]],
    );
  });

  test("ListAgents without an owner lists every owner's agents", async () => {
    const [a, b] = [owner(), owner()];
    await control.createWorkspace({ owner: a, name: "dev", spec: { agents: [{ name: "main" }] } });
    await control.createWorkspace({ owner: b, name: "dev", spec: { agents: [{ name: "main" }] } });
    const owners = new Set((await control.listAgents({})).agents.map((x) => x.owner));
    assert.ok(owners.has(a) && owners.has(b));
  });

  test("ListAgents of an unknown owner is NotFound", async () => {
    const err = await connectErrorOf(control.listAgents({ owner: owner() }));
    assert.equal(err.code, Code.NotFound);
  });

  test("WatchAgents sends the current list, then the agent connecting, then disconnecting", async () => {
    const frank = owner();
    const created = await control.createWorkspace({ owner: frank, name: "dev", spec: { agents: [{ name: "main" }] } });
    const abort = new AbortController();
    const updates = control.watchAgents({ owner: frank }, { signal: abort.signal })[Symbol.asyncIterator]();
    const statusOf = (r: IteratorResult<WatchAgentsResponse>) => (r.done ? "ended" : r.value.agents.map((a) => [a.agentName, AgentStatus[a.status]]));
    try {
      assert.deepEqual(statusOf(await updates.next()), [["main", "CONNECTING"]]);
      const conn = connectAgent({ url: srv.url, token: created.agents[0]!.token });
      try {
        assert.deepEqual(statusOf(await updates.next()), [["main", "CONNECTED"]]);
      } finally {
        await conn.close();
      }
      assert.deepEqual(statusOf(await updates.next()), [["main", "DISCONNECTED"]]);
    } finally {
      abort.abort();
    }
  });

  test("WatchAgents sends the list again when a build replaces the agents", async () => {
    const gina = owner();
    await control.createWorkspace({ owner: gina, name: "dev", spec: { agents: [{ name: "main" }] } });
    const abort = new AbortController();
    const updates = control.watchAgents({ owner: gina }, { signal: abort.signal })[Symbol.asyncIterator]();
    try {
      await updates.next();
      const built = await control.buildWorkspace({ workspace: `${gina}/dev`, spec: { agents: [{ name: "next" }] } });
      const next = await updates.next();
      assert.deepEqual(next.done ? [] : next.value.agents.map((a) => [a.agentId, a.buildNumber]), [[built.agents[0]!.id, 2]]);
    } finally {
      abort.abort();
    }
  });

  test("WatchAgents without an owner sends every owner's agents, then a new owner's workspace as it is made", async () => {
    const [first, second] = [owner(), owner()];
    await control.createWorkspace({ owner: first, name: "dev", spec: { agents: [{ name: "main" }] } });
    const abort = new AbortController();
    const updates = control.watchAgents({}, { signal: abort.signal })[Symbol.asyncIterator]();
    const owners = (r: WatchAgentsResponse) => new Set(r.agents.map((a) => a.owner));
    try {
      const now = await nextMatching(updates, () => true);
      assert.ok(owners(now).has(first) && !owners(now).has(second));
      await control.createWorkspace({ owner: second, name: "dev", spec: { agents: [{ name: "main" }] } });
      await nextMatching(updates, (r) => owners(r).has(second), 10_000, "the new owner's agent");
    } finally {
      abort.abort();
    }
  });

  test("ListAgents gives the version and API version an agent reported and the replica serving it", async () => {
    const henry = owner();
    const created = await control.createWorkspace({ owner: henry, name: "dev", spec: { agents: [{ name: "main" }] } });
    const conn = connectAgent({ url: srv.url, token: created.agents[0]!.token });
    try {
      await conn.agent.updateStartup({ startup: { version: "v2.18.0", expandedDirectory: "/home/henry" } });
      const [a] = (await control.listAgents({ owner: henry })).agents;
      assert.deepEqual([a?.version, a?.replicaId], ["v2.18.0", srv.server.replicaId]);
      assert.match(a?.apiVersion ?? "", /^2\.\d+$/);
    } finally {
      await conn.close();
    }
  });

  test("a control call without an Authorization header is Unauthenticated", async () => {
    const bare = createClient(ControlService, createConnectTransport({ baseUrl: srv.url, httpVersion: "1.1" }));
    const err = await connectErrorOf(bare.listAgents({}));
    assert.equal(err.code, Code.Unauthenticated);
  });

  test("a control call with a wrong admin token is Unauthenticated", async () => {
    const err = await connectErrorOf(createControlClient({ url: srv.url, adminToken: `${ADMIN_TOKEN}x` }).listAgents({}));
    assert.equal(err.code, Code.Unauthenticated);
  });

  test("a control call with an agent token is Unauthenticated", async () => {
    const created = await control.createWorkspace({ owner: owner(), name: "dev", spec: { agents: [{ name: "main" }] } });
    const err = await connectErrorOf(createControlClient({ url: srv.url, adminToken: created.agents[0]!.token }).listAgents({}));
    assert.equal(err.code, Code.Unauthenticated);
  });

  test("an Agent API call with the admin token is Unauthenticated", async () => {
    const transport = createConnectTransport({
      baseUrl: srv.url,
      httpVersion: "1.1",
      interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${ADMIN_TOKEN}`), next(req))],
    });
    const err = await connectErrorOf(createClient(Agent, transport).getServiceBanner({}));
    assert.equal(err.code, Code.Unauthenticated);
  });
});

describe("control API on a server without an admin token", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer(t.db);
  });
  after(async () => {
    await srv.close();
  });

  test("refuses every control call as Unauthenticated, even with a bearer token", async () => {
    const err = await connectErrorOf(createControlClient({ url: srv.url, adminToken: "anything" }).listAgents({}));
    assert.equal(err.code, Code.Unauthenticated);
  });
});
