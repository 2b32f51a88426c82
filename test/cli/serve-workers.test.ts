import { get } from "node:http";
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { connectAgent, type AgentConnection } from "../../src/client/index.js";
import { getAgentById } from "../../src/db/queries/agents.js";
import { listReplicas } from "../../src/db/queries/replicas.js";
import { makeWorkspace } from "../support/fixtures.js";
import { eventually, useTestDatabase } from "../support/agent-server.js";
import { runCli, spawnCli } from "../support/cli.js";
import { readFile } from "node:fs/promises";
import { workerExecArgv } from "../../src/cli/serve-workers.js";

describe("agentgate serve --workers", () => {
  test("--workers 2 without --database-url is a usage error", async () => {
    const result = await runCli(["serve", "--workers", "2", "--listen", "127.0.0.1:0", "--data-dir", "/nonexistent/agentgate-workers"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--workers above 1 needs --database-url/);
  });

  test("--workers takes auto or a whole number", async () => {
    const result = await runCli(["serve", "--workers", "0", "--database-url", "postgres://postgres@127.0.0.1:1/x"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /want auto or a whole number of at least 1/);
  });

  test("workers get a larger semi-space and a smaller heap growing factor unless the operator chose them", () => {
    assert.deepEqual(workerExecArgv(["--enable-source-maps"], ""), ["--enable-source-maps", "--max-semi-space-size=32", "--heap-growing-percent=50"]);
    assert.deepEqual(workerExecArgv(["--max-semi-space-size=8"], ""), ["--max-semi-space-size=8", "--heap-growing-percent=50"]);
    assert.deepEqual(workerExecArgv([], "--max_semi_space_size=64 --trace-gc --heap_growing_percent=100"), []);
  });
});

describe("agentgate serve --workers 2 on PostgreSQL", { skip: process.env.TEST_DATABASE_URL ? false : "needs TEST_DATABASE_URL" }, () => {
  const t = useTestDatabase("pg");

  test("serves agents on both workers, replaces a killed worker, and SIGTERM drains them all", async () => {
    // Up to 16 agents: the workers accept from the shared socket themselves, so which one takes a
    // connection is the kernel's choice; agents are added until both workers hold some.
    const ws = await makeWorkspace(t.db, { agents: Array.from({ length: 16 }, (_, i) => `a${i}`) });
    const serve = spawnCli(["serve", "--workers", "2", "--listen", "127.0.0.1:0", ...t.testDb.cliArgs], { AGENTGATE_LOG_LEVEL: "info" });
    const connections: AgentConnection[] = [];
    try {
      const listening = (await serve.waitForLine((l) => l.msg === "agentgate listening")) as { url: string; replica_ids: string[] };
      assert.equal(listening.replica_ids.length, 2);
      assert.notEqual(listening.replica_ids[0], listening.replica_ids[1]);

      const agents = () => ws.agents.slice(0, connections.length);
      const replicasOf = async () => new Set((await Promise.all(agents().map((a) => getAgentById(t.db, a.id)))).map((a) => a?.lastConnectedReplicaId));
      let seen = new Set<string | null | undefined>();
      for (const a of ws.agents) {
        const conn = connectAgent({ url: listening.url, token: a.authToken });
        connections.push(conn);
        await conn.agent.getServiceBanner({});
        seen = await eventually(async () => {
          const ids = await replicasOf();
          return ids.has(null) || ids.has(undefined) ? undefined : ids;
        }, 10_000, "the agents' connections written");
        if (connections.length >= 6 && seen.size === 2) break;
      }
      assert.deepEqual([...seen].sort(), [...listening.replica_ids].sort(), "agents on both workers");
      const rows = await listReplicas(t.db, new Date(0));
      for (const id of listening.replica_ids) assert.ok(rows.some((r) => r.id === id), `replica ${id} registered`);

      // A scrape lands on one worker or the other (each on a connection of its own): every one
      // answers for the whole pool, all the agents and their calls.
      for (let i = 0; i < 4; i++) {
        const text = await scrape(listening.url);
        assert.match(text, new RegExp(`^agentgate_agents_connected ${connections.length}$`, "m"), `scrape ${i}`);
        assert.match(text, new RegExp(`^agentgate_rpcs_total\\{service="coder\\.agent\\.v2\\.Agent",method="GetServiceBanner",code="ok"\\} ${connections.length}$`, "m"), `scrape ${i}`);
      }

      // The workers accept connections themselves: with the primary stopped, new ones are served.
      process.kill(serve.child.pid!, "SIGSTOP");
      try {
        for (let i = 0; i < 4; i++) assert.equal(await healthz(listening.url), 200, `connection ${i} with the primary stopped`);
      } finally {
        process.kill(serve.child.pid!, "SIGCONT");
      }

      // SIGKILL one worker: the primary forks a new one with a new replica id; agents on it redial.
      const workerLines = serve.lines.filter((l) => l.msg === "worker listening");
      for (const l of workerLines) {
        const argv = (await readFile(`/proc/${l.worker_pid as number}/cmdline`, "utf8")).split("\0");
        assert.ok(argv.includes("--max-semi-space-size=32") && argv.includes("--heap-growing-percent=50"), `worker runs with the V8 flags: ${argv.join(" ")}`);
      }
      const victim = workerLines[0] as { worker_pid: number; replica_id: string };
      process.kill(victim.worker_pid, "SIGKILL");
      const replacement = (await serve.waitForLine((l) => l.msg === "worker listening" && l.replica_id !== victim.replica_id && !listening.replica_ids.includes(l.replica_id as string))) as { replica_id: string };
      assert.ok(serve.lines.some((l) => l.msg === "worker exited" && l.signal === "SIGKILL"));
      for (const conn of connections) await conn.agent.getServiceBanner({});
      const survivor = listening.replica_ids.find((id) => id !== victim.replica_id)!;
      const served = new Set([replacement.replica_id, survivor]);
      await eventually(async () => {
        const ids = await replicasOf();
        return [...ids].every((id) => served.has(id!)) ? ids : undefined;
      }, 20_000, "every agent back on a living worker");

      // SIGTERM: every worker drains, every disconnect is written, the primary exits 0.
      const dropped = connections.map((c) => new Promise((resolve) => c.once("disconnected", resolve)));
      serve.child.kill("SIGTERM");
      assert.equal(await serve.exited, 0, serve.stderr());
      await Promise.all(dropped);
      for (const a of agents()) {
        const row = await getAgentById(t.db, a.id);
        assert.notEqual(row?.disconnectedAt, null, `${a.name}'s disconnect written`);
        assert.ok(served.has(row!.lastConnectedReplicaId!));
      }
      const left = await listReplicas(t.db, new Date(0));
      for (const id of served) assert.ok(!left.some((r) => r.id === id), `replica ${id} removed at drain`);
    } finally {
      await Promise.all(connections.map((c) => c.close()));
      if (serve.child.exitCode === null) serve.child.kill("SIGKILL");
    }
  });
});

/** The status of GET /healthz on a connection of its own, within 10 s. */
function healthz(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = get(`${url}/healthz`, { agent: false, timeout: 10_000 }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("timeout", () => req.destroy(new Error("GET /healthz got no answer in 10 s")));
    req.on("error", reject);
  });
}

/** GET /metrics on a connection of its own, which either worker may accept. */
function scrape(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(`${url}/metrics`, { agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`/metrics answered ${res.statusCode}: ${body}`))));
    }).on("error", reject);
  });
}
