import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { ProvisionResult } from "../../src/provision/provision.js";
import { getAgentByToken } from "../support/queries.js";
import { listAppsByAgentId } from "../../src/db/queries/apps.js";
import { listDevcontainersByAgentId } from "../../src/db/queries/devcontainers.js";
import { listLogSources } from "../../src/db/queries/log-sources.js";
import { listMetadata } from "../../src/db/queries/metadata.js";
import { getMemoryMonitor, listVolumeMonitors } from "../../src/db/queries/resource-monitors.js";
import { listScriptsByAgentId } from "../../src/db/queries/scripts.js";
import { getUserByUsername } from "../../src/db/queries/users.js";
import { parseWorkspaceSpec } from "../../src/provision/spec.js";
import type { Database } from "../../src/db/database.js";
import { runCli } from "../support/cli.js";
import { availableEngines, createTestDatabase, type TestDatabase } from "../support/database.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const SPEC = {
  agents: [{
    name: "dev", os: "linux", architecture: "arm64", directory: "/home/coder", env: { EDITOR: "vim" }, connection_timeout_seconds: 120,
    apps: [{ slug: "code", display_name: "Code", url: "http://localhost:8080", healthcheck: { url: "http://localhost:8080/healthz", interval_seconds: 5, threshold: 6 } }],
    scripts: [{ display_name: "Install", script: "make install", run_on_start: true, start_blocks_login: true, timeout_seconds: 600 }],
    metadata: [{ key: "cpu", display_name: "CPU", script: "top -bn1", interval_seconds: 10, timeout_seconds: 3 }],
    devcontainers: [{ workspace_folder: "/src", config_path: ".devcontainer/devcontainer.json" }],
    resource_monitors: { memory: { enabled: true, threshold: 80 }, volumes: [{ path: "/home", enabled: true, threshold: 90 }] },
  }],
};

for (const engine of availableEngines()) {
  describe(engine, () => {
    let tdb: TestDatabase;
    let dir: string;
    before(async () => {
      tdb = await createTestDatabase(engine);
      dir = await mkdtemp(join(tmpdir(), "agentgate-cli-"));
    });
    after(async () => {
      await tdb.destroy();
      await rm(dir, { recursive: true, force: true });
    });
    const cli = (...args: string[]) => runCli([...args, ...tdb.cliArgs]);
    /** Opens the database for a look and closes it again (PGlite: the next command needs the folder). */
    async function inspect<T>(fn: (db: Database) => Promise<T>): Promise<T> {
      const db = await tdb.open();
      try {
        return await fn(db);
      } finally {
        await db.close();
      }
    }

    it("create --json makes the owner, the workspace, build 1 and one agent per --agent, with UUIDv4 tokens", async () => {
      const r = await cli("workspace", "create", "--owner", "alice", "--name", "dev", "--agent", "main", "--agent", "gpu", "--json");
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as ProvisionResult;
      assert.deepEqual(Object.keys(out), ["workspace_id", "build_id", "build_number", "agents"]);
      assert.equal(out.build_number, 1);
      assert.deepEqual(out.agents.map((a) => a.name), ["main", "gpu"]);
      for (const a of out.agents) assert.match(a.token, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      const row = await inspect((db) => getAgentByToken(db, out.agents[1]!.token));
      assert.deepEqual([row?.agent.id, row?.owner.username, row?.workspace.name, row?.buildId], [out.agents[1]!.id, "alice", "dev", out.build_id]);
    });

    it("create --spec stores the agent with its apps, scripts, metadata, devcontainers and monitors", async () => {
      const spec = join(dir, "spec.json");
      await writeFile(spec, JSON.stringify(SPEC));
      const r = await cli("workspace", "create", "--owner", "bob", "--name", "full", "--spec", spec, "--json");
      assert.equal(r.code, 0, r.stderr);
      const id = (JSON.parse(r.stdout) as ProvisionResult).agents[0]!.id;
      const got = await inspect(async (db) => {
        const row = await getAgentByToken(db, (JSON.parse(r.stdout) as ProvisionResult).agents[0]!.token);
        return {
          agent: [row?.agent.architecture, row?.agent.directory, row?.agent.environmentVariables, row?.agent.connectionTimeoutSeconds],
          apps: (await listAppsByAgentId(db, id)).map((a) => [a.slug, a.health, a.healthcheckInterval, a.healthcheckThreshold]),
          scripts: (await listScriptsByAgentId(db, id)).map((s) => [s.displayName, s.runOnStart, s.startBlocksLogin, s.timeoutSeconds]),
          sources: (await listLogSources(db, id)).map((s) => s.displayName),
          metadata: (await listMetadata(db, id)).map((m) => [m.key, m.interval, m.timeout]),
          devcontainers: (await listDevcontainersByAgentId(db, id)).map((d) => d.workspaceFolder),
          memory: (await getMemoryMonitor(db, id))?.threshold,
          volumes: (await listVolumeMonitors(db, id)).map((v) => [v.path, v.threshold]),
        };
      });
      assert.deepEqual(got, {
        agent: ["arm64", "/home/coder", { EDITOR: "vim" }, 120],
        apps: [["code", "initializing", 5, 6]],
        scripts: [["Install", true, true, 600]],
        sources: ["Install"],
        metadata: [["cpu", 10, 3]],
        devcontainers: ["/src"],
        memory: 80,
        volumes: [["/home", 90]],
      });
    });

    it("build makes build 2 with new agents and tokens; the old agents become outdated", async () => {
      const created = JSON.parse((await cli("workspace", "create", "--owner", "carol", "--name", "ws", "--json")).stdout) as ProvisionResult;
      const r = await cli("workspace", "build", "carol/ws", "--agent", "main", "--json");
      assert.equal(r.code, 0, r.stderr);
      const built = JSON.parse(r.stdout) as ProvisionResult;
      assert.deepEqual([built.workspace_id, built.build_number], [created.workspace_id, 2]);
      assert.notEqual(built.agents[0]!.token, created.agents[0]!.token);
      const old = await inspect((db) => getAgentByToken(db, created.agents[0]!.token));
      assert.deepEqual([old?.buildNumber, old?.latestBuildNumber, old?.latestBuildId], [1, 2, built.build_id]);
      const byId = await cli("workspace", "build", created.workspace_id, "--json");
      assert.equal((JSON.parse(byId.stdout) as ProvisionResult).build_number, 3);
    });

    it("build without --spec or --agent keeps the previous build's agents, apps, scripts, metadata, devcontainers and monitors", async () => {
      const spec = join(dir, "keep.json");
      await writeFile(spec, JSON.stringify(SPEC));
      assert.equal((await cli("workspace", "create", "--owner", "gina", "--name", "keep", "--spec", spec)).code, 0);
      const r = await cli("workspace", "build", "gina/keep", "--json");
      assert.equal(r.code, 0, r.stderr);
      const built = JSON.parse(r.stdout) as ProvisionResult;
      assert.deepEqual([built.build_number, built.agents.map((a) => a.name)], [2, ["dev"]]);
      const shown = await cli("workspace", "show", "gina/keep", "--json");
      assert.equal(shown.code, 0, shown.stderr);
      const current = JSON.parse(shown.stdout) as { workspace_id: string; workspace: string; build_number: number; spec: unknown };
      assert.deepEqual([current.workspace_id, current.workspace, current.build_number], [built.workspace_id, "gina/keep", 2]);
      assert.deepEqual(current.spec, parseWorkspaceSpec(SPEC));
    });

    it("show prints the spec as YAML that --spec takes back; --agent replaces the agents", async () => {
      assert.equal((await cli("workspace", "create", "--owner", "hal", "--name", "yaml", "--agent", "one", "--agent", "two")).code, 0);
      const shown = await cli("workspace", "show", "hal/yaml");
      assert.equal(shown.code, 0, shown.stderr);
      assert.match(shown.stdout, /^# hal\/yaml, build 1 \(workspace [0-9a-f-]{36}\)\nagents:\n {2}- name: one\n/);
      const file = join(dir, "shown.yaml");
      await writeFile(file, shown.stdout);
      const again = await cli("workspace", "build", "hal/yaml", "--spec", file, "--json");
      assert.deepEqual((JSON.parse(again.stdout) as ProvisionResult).agents.map((a) => a.name), ["one", "two"]);
      const replaced = await cli("workspace", "build", "hal/yaml", "--agent", "three", "--json");
      assert.deepEqual((JSON.parse(replaced.stdout) as ProvisionResult).agents.map((a) => a.name), ["three"]);
      const spec = JSON.parse((await cli("workspace", "show", "hal/yaml", "--json")).stdout) as { build_number: number; spec: { agents: { name: string }[] } };
      assert.deepEqual([spec.build_number, spec.spec.agents.map((a) => a.name)], [3, ["three"]]);
    });

    it("list shows each workspace once with its latest build and agents", async () => {
      const created = JSON.parse((await cli("workspace", "create", "--owner", "ivy", "--name", "box", "--agent", "a", "--agent", "b", "--json")).stdout) as ProvisionResult;
      await cli("workspace", "build", "ivy/box");
      const r = await cli("workspace", "list", "--json");
      assert.equal(r.code, 0, r.stderr);
      const mine = (JSON.parse(r.stdout) as { workspace_id: string }[]).filter((l) => l.workspace_id === created.workspace_id);
      assert.deepEqual(mine, [{ workspace_id: created.workspace_id, workspace: "ivy/box", build_number: 2, agents: ["a", "b"] }]);
      const text = await cli("workspace", "list");
      assert.match(text.stdout, /^WORKSPACE\s+BUILD\s+AGENTS\s+ID\n/);
      assert.match(text.stdout, new RegExp(`\\nivy/box\\s+2\\s+a,b\\s+${created.workspace_id}\\n`));
    });

    it("status --json lists the latest build's agents with computed status; delete removes them", async () => {
      const created = JSON.parse((await cli("workspace", "create", "--owner", "dave", "--name", "box", "--agent", "a1", "--json")).stdout) as ProvisionResult;
      const status = await cli("status", "--json");
      assert.equal(status.code, 0, status.stderr);
      const mine = (JSON.parse(status.stdout) as { workspace_id: string }[]).filter((l) => l.workspace_id === created.workspace_id);
      assert.deepEqual(mine, [{
        workspace_id: created.workspace_id, workspace: "dave/box", agent_id: created.agents[0]!.id, agent: "a1",
        build_number: 1, status: "connecting", lifecycle_state: "created", last_connected_at: null,
      }]);
      const del = await cli("workspace", "delete", "dave/box");
      assert.equal(del.code, 0, del.stderr);
      const after = JSON.parse((await cli("status", "--json")).stdout) as { workspace_id: string }[];
      assert.equal(after.filter((l) => l.workspace_id === created.workspace_id).length, 0);
      assert.equal(await inspect((db) => getAgentByToken(db, created.agents[0]!.token)), undefined);
    });

    it("status prints a table with a header", async () => {
      const r = await cli("status");
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout.split("\n")[0]!, /^WORKSPACE\s+AGENT\s+BUILD\s+STATUS\s+LIFECYCLE\s+LAST CONNECTED$/);
    });

    for (const [why, args, message] of [
      ["an unknown workspace", ["workspace", "build", "nobody/nothing"], /workspace "nobody\/nothing" not found/],
      ["duplicate agent names", ["workspace", "create", "--owner", "erin", "--name", "dup", "--agent", "a", "--agent", "a"], /agent name "a" is used twice/],
      ["a malformed spec", ["workspace", "create", "--owner", "erin", "--name", "bad", "--spec", "SPEC"], /--spec .*: not JSON/],
      ["a spec with an unknown field", ["workspace", "create", "--owner", "erin", "--name", "bad2", "--spec", "SPEC2"], /agents\[0\]\.nmae: unknown field/],
      ["a taken workspace name", ["workspace", "create", "--owner", "alice", "--name", "dev"], /workspace alice\/dev already exists/],
    ] as const) {
      it(`${why} is a one-line error, exit 1, and nothing written`, async () => {
        await writeFile(join(dir, "bad.json"), "{ not json");
        await writeFile(join(dir, "bad2.json"), JSON.stringify({ agents: [{ name: "x", nmae: "y" }] }));
        const argv = args.map((a) => (a === "SPEC" ? join(dir, "bad.json") : a === "SPEC2" ? join(dir, "bad2.json") : a));
        const r = await cli(...argv);
        assert.equal(r.code, 1);
        assert.equal(r.stdout, "");
        assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
        assert.match(r.stderr, message);
        if (why !== "a taken workspace name" && why !== "an unknown workspace") {
          assert.equal(await inspect((db) => getUserByUsername(db, "erin")), undefined);
        }
      });
    }

    it("workspace delete of an unknown id fails with exit 1", async () => {
      const r = await cli("workspace", "delete", "00000000-0000-4000-8000-000000000000");
      assert.deepEqual([r.code, r.stderr.trim().split("\n").length], [1, 1]);
      assert.match(r.stderr, /not found/);
    });

    it("created ids are lowercase UUIDs", async () => {
      const r = JSON.parse((await cli("workspace", "create", "--owner", "frank", "--name", "x", "--json")).stdout) as ProvisionResult;
      for (const id of [r.workspace_id, r.build_id, r.agents[0]!.id]) assert.match(id, UUID);
    });
  });
}
