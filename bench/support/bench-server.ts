/**
 * An agentgate server in its own process for benchmarks, so its CPU and memory are its own.
 * Started with fork(): provisions AGENTS agents (spread over workspaces of 100), starts the
 * server on 127.0.0.1:0, and sends {url, tokens} to the parent. Then answers
 * "usage" messages with its CPU time and RSS (after a GC), and exits on "stop".
 *
 * Env: BENCH_DATABASE_URL (PostgreSQL; else PGlite in a temp folder), AGENTS (default 1).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase } from "../../src/db/database.js";
import { migrate } from "../../src/db/migrate.js";
import { createWorkspace } from "../../src/provision/provision.js";
import { defaultAgent } from "../../src/provision/spec.js";
import { parseServerConfig } from "../../src/config.js";
import { silentLogger } from "../../src/log.js";
import { startAgentgate } from "../../src/server/start.js";

const AGENTS = Number(process.env.AGENTS ?? 1);
const PER_WORKSPACE = 100;

const dataDir = process.env.BENCH_DATABASE_URL ? undefined : await mkdtemp(join(tmpdir(), "agentgate-bench-"));
const db = await openDatabase(process.env.BENCH_DATABASE_URL ? { databaseUrl: process.env.BENCH_DATABASE_URL } : { dataDir: dataDir! });
await migrate(db);
const tokens: string[] = [];
const run = `b${process.pid}`;
for (let w = 0; tokens.length < AGENTS; w++) {
  const names = Array.from({ length: Math.min(PER_WORKSPACE, AGENTS - tokens.length) }, (_, i) => `a${i}`);
  const result = await createWorkspace(db, { owner: run, name: `${run}-w${w}`, spec: { agents: names.map(defaultAgent) } });
  tokens.push(...result.agents.map((a) => a.token));
}
const server = await startAgentgate(parseServerConfig(["--listen", "127.0.0.1:0"], {}), db, silentLogger());
process.send!({ url: `http://127.0.0.1:${server.address.port}`, tokens });

process.on("message", async (msg: string) => {
  if (msg === "usage") {
    (globalThis as { gc?: () => void }).gc?.();
    const cpu = process.cpuUsage();
    const mem = process.memoryUsage();
    process.send!({ cpuMicros: cpu.user + cpu.system, rss: mem.rss, heap: mem.heapUsed, external: mem.external, tunnels: server.tunnelCount });
  } else if (msg === "stop") {
    await server.shutdown();
    await db.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
    process.exit(0);
  }
});
