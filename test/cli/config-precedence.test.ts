import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { WorkspaceStatus } from "../../src/cli/status.js";
import { listScriptsByAgentId } from "../../src/db/queries/scripts.js";
import { insertLogs } from "../support/queries.js";
import { createWorkspace } from "../../src/provision/provision.js";
import { parseWorkspaceSpec } from "../../src/provision/spec.js";
import { runCli } from "../support/cli.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

/**
 * Where a flag's value comes from, seen from outside: `status WORKSPACE --json` prints as many
 * log lines as `--logs` resolved to (the agent has three), and the config file also says where
 * the database is.
 */
describe("flags over environment over config file over defaults", () => {
  let tdb: TestDatabase;
  let dir: string;
  let yaml: string;
  let json: string;
  before(async () => {
    tdb = await createTestDatabase("pglite");
    dir = await mkdtemp(join(tmpdir(), "agentgate-config-"));
    const db = await tdb.open();
    try {
      const spec = parseWorkspaceSpec({ agents: [{ name: "main", scripts: [{ display_name: "Hello", script: "true" }] }] });
      const { agents } = await createWorkspace(db, { owner: "alice", name: "dev", spec });
      const [script] = await listScriptsByAgentId(db, agents[0]!.id);
      await insertLogs(db, { agentId: agents[0]!.id, logSourceId: script!.logSourceId, createdAt: new Date(), lines: ["a", "b", "c"].map((output) => ({ output, level: "info" })) });
    } finally {
      await db.close();
    }
    yaml = join(dir, "agentgate.yaml");
    await writeFile(yaml, `# where the database is, and how many log lines\ndata-dir: ${tdb.options.dataDir}\nlogs: 1\n`);
    json = join(dir, "agentgate.json");
    await writeFile(json, JSON.stringify({ "data-dir": tdb.options.dataDir, logs: 1 }));
  });
  after(async () => {
    await tdb.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  async function logLines(args: string[], env: NodeJS.ProcessEnv = {}): Promise<number> {
    const r = await runCli(["status", "alice/dev", "--json", ...args], env);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as WorkspaceStatus).agents[0]!.logs.length;
  }

  test("the default, when nothing else says", async () => {
    assert.equal(await logLines(["--data-dir", tdb.options.dataDir!]), 3);
  });

  test("a YAML or JSON config file over the default", async () => {
    assert.equal(await logLines(["--config", yaml]), 1);
    assert.equal(await logLines(["--config", json]), 1);
  });

  test("the config file named by AGENTGATE_CONFIG", async () => {
    assert.equal(await logLines([], { AGENTGATE_CONFIG: yaml }), 1);
  });

  test("the environment over the config file", async () => {
    assert.equal(await logLines(["--config", yaml], { AGENTGATE_LOGS: "2" }), 2);
  });

  test("the command line over the environment", async () => {
    assert.equal(await logLines(["--config", yaml, "--logs", "0"], { AGENTGATE_LOGS: "2" }), 0);
  });
});
