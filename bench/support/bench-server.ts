/**
 * An agentgate server in its own process for benchmarks, so its CPU and memory are its own.
 * Started with fork(): provisions AGENTS agents (spread over workspaces of 100), starts the
 * server on 127.0.0.1:0, and sends {url, tokens, agents} to the parent. Then answers
 * "usage" messages with its CPU time and RSS (after a GC; "usage-nogc" skips the GC, for samples
 * taken under load), and exits on "stop".
 *
 * Env: BENCH_DATABASE_URL (PostgreSQL; else PGlite in a temp folder), AGENTS (default 1), and for
 * bench/agentapi.ts:
 *   AGENT_SPEC=agentapi   each agent gets two metadata items (cpu, mem) and a start script, whose
 *                         log source id comes back in `agents`;
 *   COUNT_STATEMENTS=1    every statement counted by kind, timed, and sent back with "usage";
 *   POOL_SIZE             the pg pool size (default: the server's own);
 *   AGENT_STATS_INTERVAL_MS  the stats interval given to agents;
 *   AGENTS_PER_WORKSPACE  default 100;
 *   AGENT_UPDATE_INTERVAL_MS  the ping / refresh / identity sweep period (default the server's);
 *   SERVER_FLAGS          a JSON object of `serve` flags (e.g. {"max-request-bytes":"1GiB"}), for bench/caps.ts;
 *   CONNECT_UNARY=1       the lean unary path off (`--connect-unary`), for comparison;
 *   TUNNEL_HTTP2=agentgate  agent tunnels' HTTP/2 on agentgate's own connection (`--tunnel-http2`).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase } from "../../src/db/database.js";
import { migrate } from "../../src/db/migrate.js";
import { createWorkspace } from "../../src/provision/provision.js";
import { defaultAgent, parseWorkspaceSpec, type AgentSpec } from "../../src/provision/spec.js";
import { loadServerConfig } from "../../src/config.js";
import { silentLogger } from "../../src/log.js";
import { startAgentgate } from "../../src/server/start.js";
import { countedDatabase, StatementCounter } from "./statement-counter.js";

const AGENTS = Number(process.env.AGENTS ?? 1);
/**
 * Agents per workspace: 100 for the tunnel bench (fewer rows to provision); AGENTS_PER_WORKSPACE=1
 * for a fleet of ordinary one-agent workspaces.
 */
const PER_WORKSPACE = Number(process.env.AGENTS_PER_WORKSPACE ?? 100);
const POOL_SIZE = process.env.POOL_SIZE ? Number(process.env.POOL_SIZE) : undefined;

/** The agent an Agent API benchmark needs: metadata to report and a log source to file lines under. */
function agentApiAgent(name: string): AgentSpec {
  return parseWorkspaceSpec({
    agents: [
      {
        name,
        metadata: [
          { key: "cpu", display_name: "CPU", script: "true", interval_seconds: 10, timeout_seconds: 1 },
          { key: "mem", display_name: "Memory", script: "true", interval_seconds: 10, timeout_seconds: 1 },
        ],
        scripts: [{ display_name: "Startup", script: "true" }],
      },
    ],
  }).agents[0]!;
}
const agentSpec = process.env.AGENT_SPEC === "agentapi" ? agentApiAgent : defaultAgent;

const dataDir = process.env.BENCH_DATABASE_URL ? undefined : await mkdtemp(join(tmpdir(), "agentgate-bench-"));
const db = await openDatabase(
  process.env.BENCH_DATABASE_URL ? { databaseUrl: process.env.BENCH_DATABASE_URL, ...(POOL_SIZE ? { poolSize: POOL_SIZE } : {}) } : { dataDir: dataDir! },
);
await migrate(db);
const agents: { id: string; token: string; logSourceId?: string }[] = [];
const run = `b${process.pid}`;
for (let w = 0; agents.length < AGENTS; w++) {
  const names = Array.from({ length: Math.min(PER_WORKSPACE, AGENTS - agents.length) }, (_, i) => `a${i}`);
  const result = await createWorkspace(db, { owner: run, name: `${run}-w${w}`, spec: { agents: names.map(agentSpec) } });
  agents.push(...result.agents.map((a) => ({ id: a.id, token: a.token })));
}
if (process.env.AGENT_SPEC === "agentapi") {
  const { rows } = await db.query<{ agent: string; id: string }>(
    "SELECT workspace_agent_id AS agent, id FROM workspace_agent_log_sources WHERE workspace_agent_id = ANY($1::uuid[])",
    [agents.map((a) => a.id)],
  );
  const byAgent = new Map(rows.map((r) => [r.agent, r.id]));
  for (const a of agents) a.logSourceId = byAgent.get(a.id);
}
const counter = process.env.COUNT_STATEMENTS ? new StatementCounter() : undefined;
const serverFlags = JSON.parse(process.env.SERVER_FLAGS ?? "{}") as Record<string, string>;
// CONNECT_UNARY=1: every call through connect-node's router, the lean unary path off.
const base = loadServerConfig({
  cli: {
    ...serverFlags,
    listen: "127.0.0.1:0",
    ...(process.env.CONNECT_UNARY === "1" ? { "connect-unary": true } : {}),
    ...(process.env.TUNNEL_HTTP2 ? { "tunnel-http2": process.env.TUNNEL_HTTP2 } : {}),
  },
});
const withStats = process.env.AGENT_STATS_INTERVAL_MS ? { ...base, agentStatsIntervalMs: Number(process.env.AGENT_STATS_INTERVAL_MS) } : base;
const updateMs = process.env.AGENT_UPDATE_INTERVAL_MS ? Number(process.env.AGENT_UPDATE_INTERVAL_MS) : undefined;
const config = updateMs ? { ...withStats, agentUpdateIntervalMs: updateMs, agentInactiveTimeoutMs: 2 * updateMs } : withStats;
const server = await startAgentgate(config, counter ? countedDatabase(db, counter) : db, silentLogger());
process.send!({ url: `http://127.0.0.1:${server.address.port}`, tokens: agents.map((a) => a.token), agents });

process.on("message", async (msg: string) => {
  if (msg === "usage" || msg === "usage-nogc") {
    if (msg === "usage") (globalThis as { gc?: () => void }).gc?.();
    const cpu = process.cpuUsage();
    const mem = process.memoryUsage();
    process.send!({
      cpuMicros: cpu.user + cpu.system,
      rss: mem.rss,
      heap: mem.heapUsed,
      external: mem.external,
      tunnels: server.tunnelCount,
      ...(counter ? { statements: counter.snapshot() } : {}),
    });
  } else if (msg === "stop") {
    await server.shutdown();
    await db.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
    process.exit(0);
  }
});
