import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { AgentStatus, AppHealth, LifecycleState, LogLevel } from "../../gen/agentgate/control/v1/control_pb.js";
import { AppHealth as AgentAppHealth, Lifecycle_State, Log_Level } from "../../gen/coder/agent/v2/agent_pb.js";
import { createControlClient, type ControlClient } from "../../src/cli/control-client.js";
import { connectAgent, type AgentConnection } from "../../src/client/index.js";
import { DEFAULT_LOG_LIMIT, MAX_LOG_LIMIT } from "../../src/control/workspace-agents.js";
import { AGENT_METADATA_BATCH_CHANNEL } from "../../src/db/events.js";
import { listAppsByAgentId } from "../../src/db/queries/apps.js";
import { listScriptsByAgentId } from "../../src/db/queries/scripts.js";
import { uuidBytes } from "../agentapi/support.js";
import { startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { recordEvents } from "../support/events.js";
import { connectErrorOf } from "../support/connect-error.js";

const ADMIN_TOKEN = "test-admin-token";
/** More lines than the default limit returns, so the default is seen cutting. */
const LINES = DEFAULT_LOG_LIMIT + 5;

/**
 * GetWorkspaceAgents over a real server: the agent reports through a real tunnel what the README's
 * newcomer spec declares (an app with a health check, a script, two metadata items), and the RPC
 * gives it back.
 */
describe("GetWorkspaceAgents", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  let control: ControlClient;
  let agent: AgentConnection;
  const owner = `u-${randomUUID().slice(0, 8)}`;
  let workspaceId: string;
  let agentId: string;

  before(async () => {
    srv = await startTestServer(t.db, { adminToken: ADMIN_TOKEN, metadataFlushIntervalMs: 20 });
    control = createControlClient({ url: srv.url, adminToken: ADMIN_TOKEN });
    const created = await control.createWorkspace({
      owner,
      name: "dev",
      spec: {
        agents: [{
          name: "main",
          apps: [
            { slug: "web", url: "http://127.0.0.1:3999", healthcheck: { url: "http://127.0.0.1:3999/", intervalSeconds: 2, threshold: 2 } },
            { slug: "shell", command: "bash" },
          ],
          scripts: [{ displayName: "Hello", script: "echo hello", runOnStart: true }],
          metadata: [
            { key: "load", displayName: "Load", script: "cut -d' ' -f1 /proc/loadavg", intervalSeconds: 2 },
            { key: "user", displayName: "User", script: "whoami" },
            { key: "disk", displayName: "Disk", script: "df" },
          ],
        }],
      },
    });
    workspaceId = created.workspaceId;
    agentId = created.agents[0]!.id;
    const [script] = await listScriptsByAgentId(t.db, agentId);
    const web = (await listAppsByAgentId(t.db, agentId)).find((a) => a.slug === "web")!;

    agent = connectAgent({ url: srv.url, token: created.agents[0]!.token });
    await agent.ready();
    const batch = await recordEvents<{ agent_ids: string[] }>(t.db.pubsub, AGENT_METADATA_BATCH_CHANNEL);
    try {
      await agent.agent.batchUpdateMetadata({
        metadata: [{ key: "load", result: { value: "0.42" } }, { key: "user", result: { value: "", error: "whoami: exit status 1" } }],
      });
      await batch.next((e) => e.agent_ids.includes(agentId));
    } finally {
      batch.stop();
    }
    await agent.agent.batchUpdateAppHealths({ updates: [{ id: uuidBytes(web.id), health: AgentAppHealth.HEALTHY }] });
    await agent.agent.updateLifecycle({ lifecycle: { state: Lifecycle_State.READY } });
    await agent.agent.batchCreateLogs({
      logSourceId: uuidBytes(script!.logSourceId),
      logs: Array.from({ length: LINES }, (_, i) => ({ output: `line ${i + 1}`, level: i === LINES - 1 ? Log_Level.WARN : Log_Level.INFO })),
    });
    await agent.agent.batchCreateLogs({ logSourceId: new Uint8Array(16), logs: [{ output: "from a legacy client", level: Log_Level.ERROR }] });
  });
  after(async () => {
    await agent.close();
    await srv.close();
  });

  test("gives the latest build's agent with its status, metadata values and errors, apps with health, and last lines by source", async () => {
    const res = await control.getWorkspaceAgents({ workspace: `${owner}/dev`, logLimit: 3 });
    assert.deepEqual([res.workspaceId, res.owner, res.workspaceName, res.buildNumber], [workspaceId, owner, "dev", 1]);
    assert.equal(res.agents.length, 1);
    const a = res.agents[0]!;
    assert.deepEqual(
      [a.summary?.agentId, a.summary?.agentName, a.summary?.status, a.summary?.lifecycleState],
      [agentId, "main", AgentStatus.CONNECTED, LifecycleState.READY],
    );
    assert.deepEqual(
      a.metadata.map((m) => [m.displayName, m.key, m.value, m.error, m.collectedAt !== undefined, m.intervalSeconds]),
      [["Load", "load", "0.42", "", true, 2], ["User", "user", "", "whoami: exit status 1", true, 10], ["Disk", "disk", "", "", false, 10]],
    );
    assert.deepEqual(
      a.apps.map((app) => [app.slug, app.url, app.health]),
      [["web", "http://127.0.0.1:3999", AppHealth.HEALTHY], ["shell", undefined, AppHealth.DISABLED]],
    );
    assert.deepEqual(
      a.logs.map((l) => [l.level, l.source, l.output]),
      [[LogLevel.INFO, "Hello", `line ${LINES - 1}`], [LogLevel.WARN, "Hello", `line ${LINES}`], [LogLevel.ERROR, "External", "from a legacy client"]],
    );
    assert.ok(a.logs[0]!.id < a.logs[1]!.id && a.logs[1]!.id < a.logs[2]!.id, "oldest first");
    assert.ok(Date.now() - timestampDate(a.logs[2]!.createdAt!).getTime() < 60_000, "server time");
    assert.equal(a.logsOverflowed, false);
  });

  test("without log_limit gives the last 20 lines; 0 gives none; the same workspace by id", async () => {
    const byDefault = await control.getWorkspaceAgents({ workspace: workspaceId });
    const logs = byDefault.agents[0]!.logs;
    assert.equal(logs.length, DEFAULT_LOG_LIMIT);
    assert.equal(logs.at(-1)!.output, "from a legacy client");
    assert.equal(logs[0]!.output, `line ${LINES + 1 - DEFAULT_LOG_LIMIT + 1}`);
    const none = await control.getWorkspaceAgents({ workspace: workspaceId, logLimit: 0 });
    assert.deepEqual(none.agents[0]!.logs, []);
    assert.equal(none.agents[0]!.metadata.length, 3, "a limit on logs only");
  });

  test(`log_limit ${MAX_LOG_LIMIT} is allowed and ${MAX_LOG_LIMIT + 1} is InvalidArgument`, async () => {
    const max = await control.getWorkspaceAgents({ workspace: workspaceId, logLimit: MAX_LOG_LIMIT });
    assert.equal(max.agents[0]!.logs.length, LINES + 1, "every line there is");
    const err = await connectErrorOf(control.getWorkspaceAgents({ workspace: workspaceId, logLimit: MAX_LOG_LIMIT + 1 }));
    assert.deepEqual([err.code, err.rawMessage], [Code.InvalidArgument, `log limit ${MAX_LOG_LIMIT + 1}: want 0 to ${MAX_LOG_LIMIT}`]);
  });

  test("an unknown workspace is NotFound and a malformed reference InvalidArgument", async () => {
    assert.equal((await connectErrorOf(control.getWorkspaceAgents({ workspace: `${owner}/nope` }))).code, Code.NotFound);
    assert.equal((await connectErrorOf(control.getWorkspaceAgents({ workspace: randomUUID() }))).code, Code.NotFound);
    assert.equal((await connectErrorOf(control.getWorkspaceAgents({ workspace: "a/b/c" }))).code, Code.InvalidArgument);
  });

  test("after a new build, gives that build's agents, which reported nothing yet", async () => {
    const other = await control.createWorkspace({ owner, name: "rebuilt", spec: { agents: [{ name: "old", metadata: [{ key: "k", script: "true" }] }] } });
    await control.buildWorkspace({ workspace: other.workspaceId, spec: { agents: [{ name: "new-b" }, { name: "new-a" }] } });
    const res = await control.getWorkspaceAgents({ workspace: `${owner}/rebuilt` });
    assert.equal(res.buildNumber, 2);
    assert.deepEqual(res.agents.map((a) => [a.summary?.agentName, a.summary?.buildNumber, a.logs.length]), [["new-a", 2, 0], ["new-b", 2, 0]]);
  });

  test("needs the admin token: none, a wrong one and an agent's token are Unauthenticated", async () => {
    const created = await control.createWorkspace({ owner, name: "auth", spec: { agents: [{ name: "main" }] } });
    for (const token of ["", "wrong", created.agents[0]!.token]) {
      const client = createControlClient({ url: srv.url, adminToken: token });
      const err = await connectErrorOf(client.getWorkspaceAgents({ workspace: created.workspaceId }));
      assert.equal(err.code, Code.Unauthenticated, `token ${JSON.stringify(token)}`);
    }
  });
});
