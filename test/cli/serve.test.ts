import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { connectAgent } from "../../src/client/index.js";
import { getAgentById } from "../../src/db/queries/agents.js";
import { listReplicas } from "../../src/db/queries/replicas.js";
import { makeWorkspace } from "../support/fixtures.js";
import { primaryEngine, useTestDatabase } from "../support/agent-server.js";

const MAIN = new URL("../../src/cli/main.ts", import.meta.url).pathname;

describe("agentgate serve as a process", () => {
  const t = useTestDatabase();

  test("serves until SIGTERM, then writes every disconnect, removes its replica row and exits 0", async () => {
    const ws = await makeWorkspace(t.db, { agents: ["main"] });
    const agentId = ws.agents[0]!.id;
    // PGlite allows one process per data folder: hand it to the server while it runs.
    if (primaryEngine() === "pglite") await t.db.close();
    const child = spawn(process.execPath, ["--import", "tsx", MAIN, "serve", "--listen", "127.0.0.1:0", ...t.testDb.cliArgs], {
      env: { ...process.env, DATABASE_URL: "", AGENTGATE_LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const lines = createInterface({ input: child.stdout! });
    const listening = await new Promise<{ url: string; replica_id: string }>((resolve, reject) => {
      lines.on("line", (line) => {
        const entry = JSON.parse(line) as { msg: string; url: string; replica_id: string };
        if (entry.msg === "agentgate listening") resolve(entry);
      });
      child.once("exit", (code) => reject(new Error(`serve exited early with ${code}`)));
    });
    assert.equal((await fetch(`${listening.url}/readyz`)).status, 200);
    assert.equal((await fetch(`${listening.url}/healthz`)).status, 200);

    const conn = connectAgent({ url: listening.url, token: ws.agents[0]!.authToken });
    assert.equal((await conn.agent.getServiceBanner({})).enabled, false);
    const dropped = new Promise((resolve) => conn.once("disconnected", resolve));
    if (primaryEngine() === "pg") {
      const replicas = await listReplicas(t.db, new Date(0));
      assert.ok(replicas.some((r) => r.id === listening.replica_id), "the replica row exists while serving");
    }
    child.kill("SIGTERM");
    assert.equal(await exited, 0);
    await dropped;
    await conn.close();

    const db = primaryEngine() === "pglite" ? await t.testDb.open() : t.db;
    const agent = await getAgentById(db, agentId);
    assert.notEqual(agent?.disconnectedAt, null, "the disconnect was written before exit");
    assert.equal(agent?.lastConnectedReplicaId, listening.replica_id);
    assert.deepEqual(await listReplicas(db, new Date(0)), []);
  });
});
