import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Code } from "@connectrpc/connect";
import { AgentStatus, AppHealth, LifecycleState, type WatchWorkspaceAgentsResponse } from "../../gen/agentgate/control/v1/control_pb.js";
import { AppHealth as AgentAppHealth, Lifecycle_State } from "../../gen/coder/agent/v2/agent_pb.js";
import { createControlClient, type ControlClient } from "../../src/cli/control-client.js";
import { connectAgent } from "../../src/client/index.js";
import { listAppsByAgentId } from "../../src/db/queries/apps.js";
import { listScriptsByAgentId } from "../../src/db/queries/scripts.js";
import { uuidBytes } from "../agentapi/support.js";
import { startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { connectErrorOf } from "../support/connect-error.js";
import { nextMatching } from "../support/stream.js";

const ADMIN_TOKEN = "test-admin-token";

/** The one agent of a watched workspace's latest build. */
function onlyAgent(r: WatchWorkspaceAgentsResponse) {
  return r.workspace?.agents[0];
}

describe("WatchWorkspaceAgents", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  let control: ControlClient;

  before(async () => {
    srv = await startTestServer(t.db, { adminToken: ADMIN_TOKEN, metadataFlushIntervalMs: 20 });
    control = createControlClient({ url: srv.url, adminToken: ADMIN_TOKEN });
  });
  after(async () => {
    await srv.close();
  });

  test("sends the workspace's agents, then each connection, lifecycle, metadata, app health, log and build change", async () => {
    const owner = `u-${randomUUID().slice(0, 8)}`;
    const created = await control.createWorkspace({
      owner,
      name: "dev",
      spec: {
        agents: [{
          name: "main",
          apps: [{ slug: "web", url: "http://127.0.0.1:3999", healthcheck: { url: "http://127.0.0.1:3999/" } }],
          scripts: [{ displayName: "Hello", script: "echo hello", runOnStart: true }],
          metadata: [{ key: "load", displayName: "Load", script: "cat /proc/loadavg" }],
        }],
      },
    });
    const agentId = created.agents[0]!.id;
    const [script] = await listScriptsByAgentId(t.db, agentId);
    const [web] = await listAppsByAgentId(t.db, agentId);
    const abort = new AbortController();
    const updates = control.watchWorkspaceAgents({ workspace: `${owner}/dev`, logLimit: 5 }, { signal: abort.signal })[Symbol.asyncIterator]();
    const first = onlyAgent(await nextMatching(updates, () => true));
    assert.deepEqual([first?.summary?.agentId, first?.summary?.status, first?.logs.length], [agentId, AgentStatus.CONNECTING, 0]);
    const conn = connectAgent({ url: srv.url, token: created.agents[0]!.token });
    try {
      await nextMatching(updates, (r) => onlyAgent(r)?.summary?.status === AgentStatus.CONNECTED, 10_000, "connected");
      await conn.agent.updateLifecycle({ lifecycle: { state: Lifecycle_State.READY } });
      await nextMatching(updates, (r) => onlyAgent(r)?.summary?.lifecycleState === LifecycleState.READY, 10_000, "ready");
      await conn.agent.batchUpdateMetadata({ metadata: [{ key: "load", result: { value: "0.42" } }] });
      await nextMatching(updates, (r) => onlyAgent(r)?.metadata[0]?.value === "0.42", 10_000, "the metadata value");
      await conn.agent.batchUpdateAppHealths({ updates: [{ id: uuidBytes(web!.id), health: AgentAppHealth.HEALTHY }] });
      await nextMatching(updates, (r) => onlyAgent(r)?.apps[0]?.health === AppHealth.HEALTHY, 10_000, "the app's health");
      await conn.agent.batchCreateLogs({ logSourceId: uuidBytes(script!.logSourceId), logs: [{ output: "hello" }] });
      await nextMatching(updates, (r) => onlyAgent(r)?.logs.some((l) => l.output === "hello") === true, 10_000, "the log line");
      const built = await control.buildWorkspace({ workspace: `${owner}/dev`, spec: { agents: [{ name: "next" }] } });
      await nextMatching(updates, (r) => onlyAgent(r)?.summary?.agentId === built.agents[0]!.id, 10_000, "the new build's agent");
    } finally {
      abort.abort();
      await conn.close();
    }
  });

  test("follows the log lines of the new build's agents", async () => {
    const owner = `u-${randomUUID().slice(0, 8)}`;
    await control.createWorkspace({ owner, name: "dev", spec: { agents: [{ name: "main" }] } });
    const abort = new AbortController();
    const updates = control.watchWorkspaceAgents({ workspace: `${owner}/dev` }, { signal: abort.signal })[Symbol.asyncIterator]();
    try {
      await nextMatching(updates, () => true);
      const built = await control.buildWorkspace({ workspace: `${owner}/dev`, spec: { agents: [{ name: "next", scripts: [{ displayName: "Hi", script: "true" }] }] } });
      await nextMatching(updates, (r) => onlyAgent(r)?.summary?.agentId === built.agents[0]!.id, 10_000, "the new build's agent");
      const [script] = await listScriptsByAgentId(t.db, built.agents[0]!.id);
      const conn = connectAgent({ url: srv.url, token: built.agents[0]!.token });
      try {
        await conn.agent.batchCreateLogs({ logSourceId: uuidBytes(script!.logSourceId), logs: [{ output: "from build 2" }] });
        await nextMatching(updates, (r) => onlyAgent(r)?.logs.some((l) => l.output === "from build 2") === true, 10_000, "build 2's log line");
      } finally {
        await conn.close();
      }
    } finally {
      abort.abort();
    }
  });

  test("an unknown workspace is NotFound, a log_limit over 1000 InvalidArgument, a wrong token Unauthenticated", async () => {
    const owner = `u-${randomUUID().slice(0, 8)}`;
    await control.createWorkspace({ owner, name: "dev", spec: { agents: [{ name: "main" }] } });
    const first = (stream: AsyncIterable<unknown>) => stream[Symbol.asyncIterator]().next();
    const codes = await Promise.all([
      connectErrorOf(first(control.watchWorkspaceAgents({ workspace: `${owner}/none` }))),
      connectErrorOf(first(control.watchWorkspaceAgents({ workspace: `${owner}/dev`, logLimit: 1001 }))),
      connectErrorOf(first(createControlClient({ url: srv.url, adminToken: "wrong" }).watchWorkspaceAgents({ workspace: `${owner}/dev` }))),
    ]);
    assert.deepEqual(codes.map((e) => e.code), [Code.NotFound, Code.InvalidArgument, Code.Unauthenticated]);
  });
});
