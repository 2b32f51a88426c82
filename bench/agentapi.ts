/**
 * The Agent API under load, end to end on PostgreSQL: real agents (the SDK) dialling a real server
 * (startAgentgate) over WebSocket → yamux → HTTP/2 → Connect, every statement the server sends
 * counted by kind.
 *
 * (a) log ingestion: LOG_AGENTS agents (100) each send LOG_BATCHES batches (20) of 500 lines through
 *     their tunnels, all at once; lines per second into the database (target ≥ 100,000).
 * (b) the steady workload, compressed SPEEDUP times (10): stats every 30 s and two metadata items
 *     every 10 s per agent, for fleets of FLEETS agents ("250,500,1000") in turn, PHASE_S seconds
 *     (15) each; RPCs per second against statements per second, by kind. The agent re-read
 *     (one SELECT per RPC, agent-api.md §1.7) grows with RPCs; the batched writes grow with time.
 *
 *   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test node --import tsx bench/agentapi.ts
 *
 * The URL names an admin database: a scratch database is created next to it and dropped after.
 */
import { randomUUID } from "node:crypto";
import { availableParallelism } from "node:os";
import pg from "pg";
import { Log_Level } from "../gen/coder/agent/v2/agent_pb.js";
import { connectAgent, type AgentConnection } from "../src/client/index.js";
import { parseServerConfig } from "../src/config.js";
import { openDatabase, type Database } from "../src/db/database.js";
import { migrate } from "../src/db/migrate.js";
import { insertAgent } from "../src/db/queries/agents.js";
import { insertNextBuild } from "../src/db/queries/builds.js";
import { insertLogSources } from "../src/db/queries/log-sources.js";
import { insertMetadataDescriptions } from "../src/db/queries/metadata.js";
import { insertResource } from "../src/db/queries/resources.js";
import { insertUser } from "../src/db/queries/users.js";
import { insertWorkspace } from "../src/db/queries/workspaces.js";
import { silentLogger } from "../src/log.js";
import { startAgentgate } from "../src/server/start.js";

const adminUrl = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL;
if (!adminUrl) {
  process.stderr.write("set BENCH_DATABASE_URL (or TEST_DATABASE_URL) to a PostgreSQL URL\n");
  process.exit(1);
}
const LOG_AGENTS = Number(process.env.LOG_AGENTS ?? 100);
const LOG_BATCHES = Number(process.env.LOG_BATCHES ?? 20);
/** Lines per BatchCreateLogs, as the issue asks. */
const LOG_BATCH_LINES = 500;
const LOG_SOURCE_ID = "0b1e5c3a-6d2f-4e8a-9c1b-2a3d4e5f6a7b";
const FLEETS = (process.env.FLEETS ?? "250,500,1000").split(",").map(Number);
const SPEEDUP = Number(process.env.SPEEDUP ?? 10);
const PHASE_S = Number(process.env.PHASE_S ?? 15);
/** Coder's defaults: stats every 30 s, metadata items every 10 s. */
const STATS_EVERY_MS = 30_000 / SPEEDUP;
const METADATA_EVERY_MS = 10_000 / SPEEDUP;

/** Statement kinds, recognised by their SQL; the first match wins. */
const KINDS: [string, RegExp][] = [
  ["agent re-read (per RPC)", /FROM workspace_agents a WHERE a\.id = \$1 AND NOT a\.deleted/],
  ["auth lookup (per dial)", /WHERE a\.auth_token = \$1/],
  ["logs insert", /WITH new_length AS/],
  ["metadata flush", /WITH updated AS \(\s*UPDATE workspace_agent_metadata/],
  ["stats flush", /INSERT INTO workspace_agent_stats/],
  ["usage flush", /UPDATE workspaces SET last_used_at/],
  ["heartbeat flush", /FROM unnest\(\$1::uuid\[\], \$2::timestamptz\[\]/],
  ["connect/disconnect", /UPDATE workspace_agents SET/],
];

class StatementCounter {
  counts = new Map<string, number>();
  notifies = 0;
  count(sql: string): void {
    const kind = KINDS.find(([, re]) => re.test(sql))?.[0] ?? "other";
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
  }
  snapshot(): Map<string, number> {
    return new Map([...this.counts, ["NOTIFY (publishes)", this.notifies]]);
  }
}

/** The database as the server sees it, with every statement and publish counted. */
function counted(db: Database, counter: StatementCounter): Database {
  const pubsub = new Proxy(db.pubsub, {
    get(target, prop, receiver) {
      if (prop === "publish") return (channel: string, payload: string | Buffer) => ((counter.notifies++), target.publish(channel, payload));
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return new Proxy(db, {
    get(target, prop, receiver) {
      if (prop === "query") return (sql: string, params?: unknown[]) => (counter.count(sql), target.query(sql, params));
      if (prop === "pubsub") return pubsub;
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

const name = `agentgate_bench_api_${process.pid}`;
const admin = new pg.Client({ connectionString: adminUrl });
await admin.connect();
await admin.query(`CREATE DATABASE ${name}`);
const url = new URL(adminUrl);
url.pathname = `/${name}`;
const db = await openDatabase({ databaseUrl: url.toString() });
const counter = new StatementCounter();

try {
  await migrate(db);
  const agents = await provision(db, Math.max(LOG_AGENTS, ...FLEETS));
  const config = { ...parseServerConfig(["--listen", "127.0.0.1:0"], {}), agentStatsIntervalMs: STATS_EVERY_MS };
  const server = await startAgentgate(config, counted(db, counter), silentLogger());
  const base = `http://127.0.0.1:${server.address.port}`;
  try {
    await logIngestion(base, agents.slice(0, LOG_AGENTS));
    for (const n of FLEETS) await steadyWorkload(base, agents.slice(LOG_AGENTS, LOG_AGENTS + n).concat(agents.slice(0, Math.max(0, n - (agents.length - LOG_AGENTS)))));
  } finally {
    await server.shutdown();
  }
} finally {
  await db.close();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}

/** One workspace per agent, each agent with two metadata items; in one transaction. */
async function provision(q: Database, count: number): Promise<{ id: string; token: string }[]> {
  const now = new Date();
  return q.transaction(async (tx) => {
    const out: { id: string; token: string }[] = [];
    for (let i = 0; i < count; i++) {
      const user = await insertUser(tx, { id: randomUUID(), username: `bench${i}`, now });
      const ws = await insertWorkspace(tx, { id: randomUUID(), ownerId: user.id, name: `ws${i}`, now });
      const build = await insertNextBuild(tx, { id: randomUUID(), workspaceId: ws.id, jobId: randomUUID(), initiatorId: user.id, transition: "start", reason: "cli", now });
      const resource = await insertResource(tx, { id: randomUUID(), jobId: build.jobId, transition: "start", type: "bench", name: "bench", now });
      const token = randomUUID();
      const agent = await insertAgent(tx, { id: randomUUID(), resourceId: resource.id, name: "main", authToken: token, architecture: "amd64", operatingSystem: "linux", now });
      await insertMetadataDescriptions(tx, agent.id, [
        { key: "cpu", displayName: "CPU", script: "true", intervalSeconds: 10, timeoutSeconds: 1 },
        { key: "mem", displayName: "Memory", script: "true", intervalSeconds: 10, timeoutSeconds: 1 },
      ]);
      // The source a start script's lines are filed under, as a provisioned script has.
      await insertLogSources(tx, { agentId: agent.id, createdAt: now, sources: [{ id: LOG_SOURCE_ID, displayName: "Startup", icon: "" }] });
      out.push({ id: agent.id, token });
    }
    return out;
  });
}

async function connectAll(base: string, agents: { token: string }[]): Promise<AgentConnection[]> {
  const conns: AgentConnection[] = [];
  // A few dials at a time: the point is the RPCs, not a dial storm.
  for (let i = 0; i < agents.length; i += 50) {
    const group = agents.slice(i, i + 50).map((a) => connectAgent({ url: base, token: a.token }));
    await Promise.all(group.map((c) => c.ready()));
    conns.push(...group);
  }
  return conns;
}

async function logIngestion(base: string, agents: { token: string }[]): Promise<void> {
  const conns = await connectAll(base, agents);
  const source = new Uint8Array(Buffer.from(LOG_SOURCE_ID.replaceAll("-", ""), "hex"));
  const batch = Array.from({ length: LOG_BATCH_LINES }, (_, i) => ({ output: `line ${i} of a build step, some output ${"x".repeat(20)}`, level: Log_Level.INFO }));
  const before = counter.snapshot();
  const start = performance.now();
  const cpu = process.cpuUsage();
  let exceeded = 0;
  await Promise.all(
    conns.map(async (c) => {
      for (let b = 0; b < LOG_BATCHES; b++) if ((await c.agent.batchCreateLogs({ logSourceId: source, logs: batch })).logLimitExceeded) exceeded++;
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  const used = process.cpuUsage(cpu);
  const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM workspace_agent_logs");
  const rpcs = conns.length * LOG_BATCHES;
  out(`(a) log ingestion: ${conns.length} agents × ${LOG_BATCHES} batches × ${LOG_BATCH_LINES} lines`);
  out(`    ${rows[0]!.n} lines stored in ${seconds.toFixed(2)} s = ${Math.round(rows[0]!.n / seconds).toLocaleString("en")} lines/s (${(rpcs / seconds).toFixed(0)} RPC/s${exceeded ? `, ${exceeded} over the cap` : ""})`);
  out(`    this process (agents + server) used ${(((used.user + used.system) / 1e6 / seconds) * 100).toFixed(0)} % of a core; PostgreSQL shares the same ${availableParallelism()} cores`);
  printDelta(before, counter.snapshot(), seconds, rpcs);
  await Promise.all(conns.map((c) => c.close()));
}

async function steadyWorkload(base: string, agents: { token: string }[]): Promise<void> {
  const conns = await connectAll(base, agents);
  let rpcs = 0;
  let failures = 0;
  const timers: NodeJS.Timeout[] = [];
  const call = (p: Promise<unknown>) => p.then(() => void rpcs++, () => void failures++);
  for (const c of conns) {
    // Spread each agent's phase over the interval, as independent agents would be.
    timers.push(setTimeout(() => timers.push(setInterval(() => call(c.agent.updateStats({ stats: { connectionCount: 0n, rxBytes: 1n } })), STATS_EVERY_MS)), Math.random() * STATS_EVERY_MS));
    timers.push(
      setTimeout(
        () =>
          timers.push(
            setInterval(() => call(c.agent.batchUpdateMetadata({ metadata: [{ key: "cpu", result: { value: `${Math.random()}` } }, { key: "mem", result: { value: "1 GiB" } }] })), METADATA_EVERY_MS),
          ),
        Math.random() * METADATA_EVERY_MS,
      ),
    );
  }
  // Let every agent's timers start before measuring.
  await new Promise((r) => setTimeout(r, Math.max(STATS_EVERY_MS, METADATA_EVERY_MS)));
  const before = counter.snapshot();
  const rpcsBefore = rpcs;
  const start = performance.now();
  await new Promise((r) => setTimeout(r, PHASE_S * 1000));
  const seconds = (performance.now() - start) / 1000;
  const after = counter.snapshot();
  const done = rpcs - rpcsBefore;
  for (const t of timers) clearTimeout(t);
  out(`(b) steady workload, ${conns.length} agents, ${SPEEDUP}× compressed (stats every ${STATS_EVERY_MS} ms, metadata every ${METADATA_EVERY_MS} ms), ${seconds.toFixed(1)} s`);
  out(`    ${(done / seconds).toFixed(0)} RPC/s${failures ? `, ${failures} failed` : ""}`);
  printDelta(before, after, seconds, done);
  await Promise.all(conns.map((c) => c.close()));
}

function printDelta(before: Map<string, number>, after: Map<string, number>, seconds: number, rpcs: number): void {
  let total = 0;
  for (const [kind, n] of after) {
    const d = n - (before.get(kind) ?? 0);
    if (d === 0) continue;
    if (kind !== "NOTIFY (publishes)") total += d;
    out(`    ${kind.padEnd(26)} ${(d / seconds).toFixed(1).padStart(8)} /s  ${(d / rpcs).toFixed(3).padStart(7)} per RPC`);
  }
  out(`    ${"all statements".padEnd(26)} ${(total / seconds).toFixed(1).padStart(8)} /s  ${(total / rpcs).toFixed(3).padStart(7)} per RPC`);
}

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}
