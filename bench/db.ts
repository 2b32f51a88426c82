/**
 * Batched against one-at-a-time database writes, on PostgreSQL, in one run:
 * - connection-time updates of 10,000 agents: one unnest statement against one statement per agent;
 * - 100,000 log rows through insertLogBatch (what BatchCreateLogs runs): batches of 1,000 lines
 *   against one row per statement.
 * Each path writes the same rows; the ratio is the point (the batched path should be ≥ 20×).
 *
 *   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test node --import tsx bench/db.ts
 *
 * The URL names an admin database: a scratch database is created next to it and dropped after.
 * AGENTS and LOG_ROWS in the environment shrink the run.
 */
import { randomUUID } from "node:crypto";
import pg from "pg";
import { openDatabase } from "../src/db/database.js";
import { migrate } from "../src/db/migrate.js";
import { connectAgent, refreshAgentConnections, type AgentConnection, type ConnectionRefresh } from "../src/db/queries/agent-connections.js";
import { insertAgent } from "../src/db/queries/agents.js";
import { insertNextBuild } from "../src/db/queries/builds.js";
import { insertLogSources } from "../src/db/queries/log-sources.js";
import { insertLogBatch } from "../src/db/queries/logs.js";
import { insertResource } from "../src/db/queries/resources.js";
import { insertUser } from "../src/db/queries/users.js";
import { insertWorkspace } from "../src/db/queries/workspaces.js";
import { NIL_UUID } from "../src/db/enums.js";

const adminUrl = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL;
if (!adminUrl) {
  process.stderr.write("set BENCH_DATABASE_URL (or TEST_DATABASE_URL) to a PostgreSQL URL\n");
  process.exit(1);
}
const AGENTS = Number(process.env.AGENTS ?? 10_000);
const LOG_ROWS = Number(process.env.LOG_ROWS ?? 100_000);
/** Heartbeat batch: one flush writes every agent of the fleet; logs: a typical BatchCreateLogs size. */
const LOG_BATCH = 1_000;
const ROUNDS = 3;
/** Log rows spread over this many agents so no agent passes the 1 MiB logs_length cap. */
const LOG_AGENTS = 20;

const name = `agentgate_bench_${process.pid}`;
const admin = new pg.Client({ connectionString: adminUrl });
await admin.connect();
await admin.query(`CREATE DATABASE ${name}`);
const url = new URL(adminUrl);
url.pathname = `/${name}`;
const db = await openDatabase({ databaseUrl: url.toString(), poolSize: 1 });

try {
  await migrate(db);
  const now = new Date();
  const user = await insertUser(db, { id: randomUUID(), username: "bench", now });
  const ws = await insertWorkspace(db, { id: randomUUID(), ownerId: user.id, name: "bench", now });
  const build = await insertNextBuild(db, { id: randomUUID(), workspaceId: ws.id, jobId: randomUUID(), initiatorId: user.id, transition: "start", reason: "cli", now });
  const resource = await insertResource(db, { id: randomUUID(), jobId: build.jobId, transition: "start", type: "bench", name: "bench", now });
  const ids: string[] = [];
  await db.transaction(async (tx) => {
    for (let i = 0; i < Math.max(AGENTS, LOG_AGENTS); i++) {
      const a = await insertAgent(tx, { id: randomUUID(), resourceId: resource.id, name: `a${i}`, authToken: randomUUID(), architecture: "amd64", operatingSystem: "linux", now });
      ids.push(a.id);
      // Log lines go only under an agent's own sources.
      await insertLogSources(tx, { agentId: a.id, createdAt: now, sources: [{ id: NIL_UUID, displayName: "bench", icon: "" }] });
    }
  });
  const replicaId = randomUUID();
  const connections: { id: string; connection: AgentConnection }[] = [];
  for (const id of ids.slice(0, AGENTS)) connections.push({ id, connection: (await connectAgent(db, { id, replicaId, now }))! });
  const updates = (at: Date): ConnectionRefresh[] => connections.map(({ id, connection }) => ({ agentId: id, connection, at }));

  // Alternating rounds, median of each: the machine is shared and one round is noisy.
  const singles: number[] = [];
  const batches: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    singles.push(await time(async () => {
      for (const u of updates(new Date())) await refreshAgentConnections(db, replicaId, [u]);
    }));
    batches.push(await time(async () => {
      await refreshAgentConnections(db, replicaId, updates(new Date()));
    }));
  }
  report(`connection updates, ${AGENTS} agents (median of ${ROUNDS})`, "one statement per agent", median(singles), "one unnest statement", median(batches));

  const line = (i: number) => ({ output: `bench log line ${i} ${"x".repeat(40)}`, level: "info" as const });
  const rowByRow = await time(async () => {
    for (let i = 0; i < LOG_ROWS; i++) {
      await insertLogBatch(db, { agentId: ids[i % LOG_AGENTS]!, logSourceId: NIL_UUID, createdAt: new Date(), lines: [line(i)] });
    }
  });
  const inBatches = await time(async () => {
    for (let i = 0; i < LOG_ROWS; i += LOG_BATCH) {
      const lines = Array.from({ length: Math.min(LOG_BATCH, LOG_ROWS - i) }, (_, j) => line(i + j));
      await insertLogBatch(db, { agentId: ids[(i / LOG_BATCH) % LOG_AGENTS]!, logSourceId: NIL_UUID, createdAt: new Date(), lines });
    }
  });
  report(`log rows, ${LOG_ROWS}`, "one row per statement", rowByRow, `batches of ${LOG_BATCH}`, inBatches);
} finally {
  await db.close();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function time(fn: () => Promise<void>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

function report(what: string, baseName: string, baseMs: number, fastName: string, fastMs: number): void {
  process.stdout.write(
    `${what}:\n  ${baseName.padEnd(26)} ${baseMs.toFixed(0).padStart(7)} ms\n  ${fastName.padEnd(26)} ${fastMs.toFixed(0).padStart(7)} ms\n  ratio ${(baseMs / fastMs).toFixed(1)}x\n`,
  );
}
