import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { WorkspaceStatus } from "../../src/cli/status.js";
import type { Database } from "../../src/db/database.js";
import { updateAgentLifecycle } from "../../src/db/queries/agents.js";
import { listAppsByAgentId, updateAppHealths } from "../../src/db/queries/apps.js";
import { insertLogs, updateMetadata } from "../support/queries.js";
import { listScriptsByAgentId } from "../../src/db/queries/scripts.js";
import { createWorkspace } from "../../src/provision/provision.js";
import { parseWorkspaceSpec } from "../../src/provision/spec.js";
import { primaryEngine, startTestServer, type TestServer } from "../support/agent-server.js";
import { runCli, type CliResult } from "../support/cli.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

const ADMIN_TOKEN = "cli-admin-token";
/** The control API's variables cleared, so only flags decide the path. */
const NO_CONTROL_ENV = { AGENTGATE_URL: "", AGENTGATE_ADMIN_TOKEN: "" };
const COLLECTED = new Date("2026-11-27T08:31:40.000Z");
const LOGGED = new Date("2026-11-27T08:31:39.000Z");

/** The README's newcomer spec: an app with a health check, a start script, two metadata items. */
const SPEC = parseWorkspaceSpec({
  agents: [{
    name: "main",
    apps: [{ slug: "web", url: "http://127.0.0.1:3999", healthcheck: { url: "http://127.0.0.1:3999/", interval_seconds: 2, threshold: 2 } }],
    scripts: [{ display_name: "Hello", script: "echo hello from the start script; uname -s", run_on_start: true }],
    metadata: [
      { key: "load", display_name: "Load", script: "cut -d' ' -f1 /proc/loadavg", interval_seconds: 2 },
      { key: "user", display_name: "User", script: "whoami", interval_seconds: 5 },
    ],
  }],
});

/**
 * `agentgate status WORKSPACE` reading the database itself and through a server's control API:
 * what an agent reported (written here with the query functions the Agent API uses) comes out
 * the same both ways.
 */
describe("status WORKSPACE: metadata values, app health and last logs, from the database and through the server", () => {
  let tdb: TestDatabase;
  let workspaceId: string;
  let agentId: string;
  /** `status` reading the database (PGlite: the folder must be closed here while it runs). */
  const direct = (...args: string[]) => runCli(["status", ...args, ...tdb.cliArgs], NO_CONTROL_ENV);

  before(async () => {
    tdb = await createTestDatabase(primaryEngine());
    const db = await tdb.open();
    try {
      const created = await createWorkspace(db, { owner: "alice", name: "dev", spec: SPEC });
      workspaceId = created.workspace_id;
      agentId = created.agents[0]!.id;
      await report(db, agentId);
    } finally {
      await db.close();
    }
  });
  after(async () => {
    await tdb.destroy();
  });

  test("--json reading the database: the agent, its metadata values and error, app health and the last --logs lines", async () => {
    const r = await direct("alice/dev", "--json", "--logs", "2");
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as WorkspaceStatus;
    assert.deepEqual([out.workspace_id, out.workspace, out.build_number], [workspaceId, "alice/dev", 1]);
    const [a] = out.agents;
    assert.deepEqual(
      [a?.agent_id, a?.agent, a?.status, a?.lifecycle_state, a?.last_connected_at],
      [agentId, "main", "connecting", "ready", null],
    );
    assert.deepEqual(a?.metadata, [
      { key: "load", display_name: "Load", value: "0.42", error: "", collected_at: COLLECTED.toISOString() },
      { key: "user", display_name: "User", value: "", error: "whoami: exit status 1", collected_at: COLLECTED.toISOString() },
    ]);
    assert.deepEqual(a?.apps, [{ slug: "web", display_name: "", url: "http://127.0.0.1:3999", health: "healthy" }]);
    assert.deepEqual(a?.logs, [
      { created_at: LOGGED.toISOString(), level: "info", source: "Hello", output: "Linux" },
      { created_at: LOGGED.toISOString(), level: "warn", source: "Hello", output: "done" },
    ]);
    assert.equal(a?.logs_overflowed, false);
  });

  test("the table: the status line, then metadata, apps and logs indented", async () => {
    const r = await direct("alice/dev");
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, [
      "WORKSPACE  AGENT  BUILD  STATUS      LIFECYCLE  LAST CONNECTED",
      "alice/dev  main   1      connecting  ready      never",
      "",
      "  METADATA  KEY   VALUE                         COLLECTED AT",
      "  Load      load  0.42                          2026-11-27T08:31:40.000Z",
      "  User      user  error: whoami: exit status 1  2026-11-27T08:31:40.000Z",
      "",
      "  APP  HEALTH   URL",
      "  web  healthy  http://127.0.0.1:3999",
      "",
      "  LOGS (LAST 3)             LEVEL  SOURCE  OUTPUT",
      "  2026-11-27T08:31:39.000Z  info   Hello   hello from the start script",
      "  2026-11-27T08:31:39.000Z  info   Hello   Linux",
      "  2026-11-27T08:31:39.000Z  warn   Hello   done",
      "",
    ].join("\n"));
  });

  test("failures are one line on stderr and exit 1", async () => {
    const cases: [string[], string][] = [
      [["alice/nope"], 'workspace "alice/nope" not found'],
      [["alice/dev", "--logs", "1001"], "log limit 1001: want 0 to 1000"],
    ];
    for (const [args, message] of cases) {
      const r = await direct(...args);
      assert.deepEqual([r.code, r.stdout, r.stderr], [1, "", `agentgate status: ${message}\n`], args.join(" "));
    }
  });

  test("usage mistakes are one line on stderr and exit 2", async () => {
    const cases: [string[], string][] = [
      [["alice/dev", "--logs", "many"], "invalid --logs many (want a number of lines)"],
      [["--logs", "5"], "--logs needs a WORKSPACE"],
      [["alice/dev", "bob/dev"], 'unexpected argument "bob/dev" (one WORKSPACE at most)'],
    ];
    for (const [args, message] of cases) {
      const r = await direct(...args);
      assert.deepEqual([r.code, r.stdout, r.stderr], [2, "", `agentgate status: ${message}\n`], args.join(" "));
    }
  });

  describe("through a running server (--url)", () => {
    let db: Database;
    let srv: TestServer;
    let viaServer: (...args: string[]) => Promise<CliResult>;
    let expected: CliResult[];
    before(async () => {
      // What reading the database prints, taken one at a time before the server opens it: PGlite lets one process hold it.
      expected = [await direct("alice/dev", "--json", "--logs", "2"), await direct("alice/dev")];
      db = await tdb.open();
      srv = await startTestServer(db, { adminToken: ADMIN_TOKEN });
      viaServer = (...args) => runCli(["status", ...args, "--url", srv.url, "--admin-token", ADMIN_TOKEN], NO_CONTROL_ENV);
    });
    after(async () => {
      await srv.close();
      await db.close();
    });

    test("prints what reading the database printed, as JSON and as the table", async () => {
      const got = await Promise.all([viaServer("alice/dev", "--json", "--logs", "2"), viaServer(workspaceId)]);
      for (const r of got) assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(got.map((r) => r.stdout), expected.map((r) => r.stdout));
    });

    test("the server's errors are one line on stderr and exit 1", async () => {
      for (const [args, message] of [[["alice/nope"], 'workspace "alice/nope" not found'], [["alice/dev", "--logs", "1001"], "log limit 1001: want 0 to 1000"]] as const) {
        const r = await viaServer(...args);
        assert.deepEqual([r.code, r.stdout, r.stderr], [1, "", `agentgate status: ${message}\n`]);
      }
    });
  });

});

/** What the reference agent reports for the spec: metadata values (one an error), app health, ready, the script's output. */
async function report(db: Database, agentId: string): Promise<void> {
  await updateMetadata(db, [
    { agentId, key: "load", value: "0.42", error: "", collectedAt: COLLECTED },
    { agentId, key: "user", value: "", error: "whoami: exit status 1", collectedAt: COLLECTED },
  ]);
  const [web] = await listAppsByAgentId(db, agentId);
  await updateAppHealths(db, [{ id: web!.id, health: "healthy" }]);
  await updateAgentLifecycle(db, { id: agentId, lifecycleState: "ready", startedAt: LOGGED, readyAt: LOGGED });
  const [script] = await listScriptsByAgentId(db, agentId);
  await insertLogs(db, {
    agentId, logSourceId: script!.logSourceId, createdAt: LOGGED,
    lines: [{ output: "hello from the start script", level: "info" }, { output: "Linux", level: "info" }, { output: "done", level: "warn" }],
  });
}
