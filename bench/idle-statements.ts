/**
 * Database statements per second of an idle fleet, which must follow time, not agents: connected
 * agents that send no RPCs cost only the heartbeat batcher's flushes (one statement a second at
 * most, whatever the fleet), the identity sweep (one statement per interval per 5,000 agents) and
 * the replica and tailnet bookkeeping. Counted by PostgreSQL itself (pg_stat_database: committed
 * plus rolled-back transactions) over PHASE_S seconds for each fleet of FLEETS ("200,2000"), with
 * the server (bench/support/bench-server.ts) and the agents (bench/support/agent-fleet.ts) in
 * processes of their own. The ratio of the largest fleet's rate to the smallest's is the figure:
 * ~1 means flat; a per-agent statement per tick would make it the ratio of the fleets.
 *
 *   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test node --import tsx bench/idle-statements.ts
 *
 * Env: FLEETS, PHASE_S (30), UPDATE_MS (5000: the ping, refresh and sweep period; 3 ticks of a
 * 15 s default would say little in one phase). About 1.5 minutes with the defaults.
 */
import { once } from "node:events";
import pg from "pg";
import { child } from "./support/child-process.js";
import { pgDelta, readPg } from "./support/pg-activity.js";

const adminUrl = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL;
if (!adminUrl || !["127.0.0.1", "localhost", "[::1]"].includes(new URL(adminUrl).hostname)) {
  process.stderr.write("set BENCH_DATABASE_URL (or TEST_DATABASE_URL) to a PostgreSQL URL on 127.0.0.1\n");
  process.exit(1);
}
const FLEETS = (process.env.FLEETS ?? "200,2000").split(",").map(Number);
const PHASE_S = Number(process.env.PHASE_S ?? 30);
const UPDATE_MS = Number(process.env.UPDATE_MS ?? 5_000);
/** PostgreSQL 15 publishes an idle backend's pending counters after at most 10 s (PGSTAT_IDLE_INTERVAL). */
const PG_IDLE_FLUSH_MS = 10_500;


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const name = `agentgate_bench_idle_${process.pid}`;
const admin = new pg.Client({ connectionString: adminUrl });
await admin.connect();
await admin.query(`CREATE DATABASE ${name}`);
const url = new URL(adminUrl);
url.pathname = `/${name}`;
const rows: { agents: number; perSecond: number }[] = [];
try {
  const server = child("./bench-server.ts", {
    BENCH_DATABASE_URL: url.toString(),
    AGENTS: String(Math.max(...FLEETS)),
    AGENTS_PER_WORKSPACE: "1",
    AGENT_UPDATE_INTERVAL_MS: String(UPDATE_MS),
  });
  const [{ url: serverUrl, tokens }] = (await once(server.proc, "message")) as [{ url: string; tokens: string[] }];
  try {
    for (const n of FLEETS) {
      const fleet = child("./agent-fleet.ts", {});
      await fleet.ask({ connect: { url: serverUrl, agents: tokens.slice(0, n).map((token) => ({ token })) } });
      // Let the connect writes and the first ticks pass, and their counters be published.
      await sleep(PG_IDLE_FLUSH_MS);
      const a = await readPg(admin, name);
      await sleep(PHASE_S * 1000);
      const b = await readPg(admin, name);
      const d = pgDelta(a, b);
      rows.push({ agents: n, perSecond: d.statements / d.seconds });
      process.stdout.write(`${n} idle agents: ${d.statements} statements in ${d.seconds.toFixed(1)} s = ${(d.statements / d.seconds).toFixed(2)}/s\n`);
      fleet.proc.send("stop");
      await once(fleet.proc, "exit");
    }
  } finally {
    server.proc.send("stop");
    await once(server.proc, "exit");
  }
} finally {
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}
const first = rows[0]!;
const last = rows[rows.length - 1]!;
process.stdout.write(`\nidle fleet, ping/refresh/sweep every ${UPDATE_MS} ms, ${PHASE_S} s per fleet (PostgreSQL's own count)\n`);
process.stdout.write(`agents  statements/s\n`);
for (const r of rows) process.stdout.write(`${String(r.agents).padStart(6)}  ${r.perSecond.toFixed(2).padStart(12)}\n`);
process.stdout.write(`ratio ${last.agents}/${first.agents} agents: ${(last.perSecond / first.perSecond).toFixed(2)}× statements/s for ${(last.agents / first.agents).toFixed(0)}× agents\n`);
