import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { WorkspaceLine } from "../../src/cli/workspace.js";
import type { ProvisionResult } from "../../src/provision/provision.js";
import { parseWorkspaceSpec } from "../../src/provision/spec.js";
import { startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { runCli } from "../support/cli.js";

const ADMIN_TOKEN = "workspace-cli-token";
const SPEC = {
  agents: [{
    name: "main",
    apps: [{ slug: "web", url: "http://127.0.0.1:3999", healthcheck: { url: "http://127.0.0.1:3999/", interval_seconds: 2, threshold: 2 } }],
    scripts: [{ display_name: "Hello", script: "echo hello", run_on_start: true, timeout_seconds: 30 }],
    metadata: [{ key: "load", display_name: "Load", script: "cut -d' ' -f1 /proc/loadavg", interval_seconds: 2, timeout_seconds: 1 }],
  }],
};

describe("workspace commands through a running server's control API", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  let dir: string;
  const cli = (...args: string[]) => runCli(["workspace", ...args, "--url", srv.url, "--admin-token", ADMIN_TOKEN]);
  before(async () => {
    srv = await startTestServer(t.db, { adminToken: ADMIN_TOKEN });
    dir = await mkdtemp(join(tmpdir(), "agentgate-ws-server-"));
  });
  after(async () => {
    await srv.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("build without --spec keeps the spec; show and list read it back", async () => {
    const file = join(dir, "spec.json");
    await writeFile(file, JSON.stringify(SPEC));
    const created = JSON.parse((await cli("create", "--owner", "olga", "--name", "dev", "--spec", file, "--json")).stdout) as ProvisionResult;
    const built = await cli("build", "olga/dev", "--json");
    assert.equal(built.code, 0, built.stderr);
    assert.deepEqual((JSON.parse(built.stdout) as ProvisionResult).agents.map((a) => a.name), ["main"]);
    const shown = await cli("show", created.workspace_id, "--json");
    assert.equal(shown.code, 0, shown.stderr);
    assert.deepEqual(JSON.parse(shown.stdout), { workspace_id: created.workspace_id, workspace: "olga/dev", build_number: 2, spec: parseWorkspaceSpec(SPEC) });
    const listed = JSON.parse((await cli("list", "--json")).stdout) as WorkspaceLine[];
    assert.deepEqual(listed.filter((l) => l.workspace === "olga/dev"), [{ workspace_id: created.workspace_id, workspace: "olga/dev", build_number: 2, agents: ["main"] }]);
  });

  test("show of an unknown workspace is the server's one-line error, exit 1", async () => {
    const r = await cli("show", "olga/none");
    assert.deepEqual([r.code, r.stdout, r.stderr], [1, "", 'agentgate workspace show: workspace "olga/none" not found\n']);
  });
});
