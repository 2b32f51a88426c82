/**
 * The reconnect storm: `serve --workers 2` on a fresh PostgreSQL database, `agentgate scaletest
 * --reconnect-storm` holding N agents on it; once every agent is connected the server is stopped
 * (SIGTERM: a graceful drain) and a new one started on the same port, as a rolling restart of a
 * single node would. Prints how long the whole fleet took to be connected again (scaletest's
 * measure: from the first drop to the last agent back), the drops, dial failures (and how many
 * were 503 with Retry-After) and RPC errors, and the time from SIGTERM to the new server
 * listening.
 *
 *   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test N=5000 node --import tsx bench/reconnect-storm.ts
 *
 * The server runs from dist/ (built first with `npm run build`), as a deployment would.
 *
 * Env: N agents (2000), WORKERS (2), HOLD (60s: how long scaletest runs after every agent first
 * connected; the restart comes 5 s into it), RAMP (500/s over all scaletest processes).
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { buildDist, freePort, startServe } from "./support/serve-process.js";

const ADMIN_URL = process.env.BENCH_DATABASE_URL;
if (!ADMIN_URL) {
  console.error("set BENCH_DATABASE_URL to a PostgreSQL URL (a fresh database is made beside it)");
  process.exit(2);
}
const N = Number(process.env.N ?? 2000);
const WORKERS = Number(process.env.WORKERS ?? 2);
const HOLD = process.env.HOLD ?? "60s";
const RAMP = process.env.RAMP ?? "500/s";
const ADMIN_TOKEN = randomBytes(16).toString("hex");
const MAIN = new URL("../src/cli/main.ts", import.meta.url).pathname;

const dbName = `agentgate_storm_${randomBytes(4).toString("hex")}`;
const admin = new pg.Client({ connectionString: ADMIN_URL });
await admin.connect();
await admin.query(`CREATE DATABASE ${dbName}`);
const dbUrl = new URL(ADMIN_URL);
dbUrl.pathname = `/${dbName}`;
const db = new pg.Client({ connectionString: dbUrl.href });
const listen = `127.0.0.1:${await freePort()}`;
// The restart is timed as a deployment would see it: the built server, not the sources through tsx.
await buildDist();
const serveOptions = { workers: WORKERS, databaseUrl: dbUrl.href, adminToken: ADMIN_TOKEN, listen, built: true };
let server = await startServe(serveOptions);
await db.connect();

/** Agents the database holds as connected now. */
async function connectedAgents(): Promise<number> {
  const { rows } = await db.query<{ n: string }>(
    "SELECT count(*) AS n FROM workspace_agents WHERE first_connected_at IS NOT NULL AND (disconnected_at IS NULL OR disconnected_at < last_connected_at)",
  );
  return Number(rows[0]!.n);
}

try {
  const scaletest = spawn(
    "sh",
    ["-c", `ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"`, process.execPath, "--import", "tsx", MAIN, "scaletest", "--url", server.url, "--admin-token", ADMIN_TOKEN,
      "--agents", String(N), "--processes", "2", "--duration", HOLD, "--ramp", RAMP, "--reconnect-storm", "--json"],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let out = "";
  scaletest.stdout.on("data", (c: Buffer) => (out += c));
  const finished = new Promise<number | null>((r) => scaletest.once("exit", r));

  console.error(`waiting for ${N} agents to connect ...`);
  while ((await connectedAgents()) < N) await new Promise((r) => setTimeout(r, 500));
  await new Promise((r) => setTimeout(r, 5_000));
  console.error("restarting the server under the fleet");
  const restartAt = performance.now();
  await server.stop();
  server = await startServe(serveOptions);
  const restartMs = performance.now() - restartAt;
  const code = await finished;

  const report = JSON.parse(out) as {
    connected_at_end: number;
    dial_failures: number;
    retry_after_refusals: number;
    rpcs_lost_with_tunnel: number;
    drops: number;
    errors: Record<string, number>;
    latency_ms: { p50: number; p99: number; max: number };
    reconnect_storm: { dropped: number; back_in_ms: number | null };
  };
  const storm = report.reconnect_storm;
  console.log(
    `| agents | SIGTERM → new server listening | dropped | all back in | dial failures (503 Retry-After) | RPCs lost with their tunnel | RPC errors | connected at end |\n` +
      `| ${N} | ${(restartMs / 1000).toFixed(1)} s | ${storm.dropped} | ${storm.back_in_ms === null ? "not all back" : `${(storm.back_in_ms / 1000).toFixed(1)} s`} | ` +
      `${report.dial_failures} (${report.retry_after_refusals}) | ${report.rpcs_lost_with_tunnel} | ${Object.values(report.errors).reduce((a, b) => a + b, 0)} | ${report.connected_at_end} |`,
  );
  console.log(`scaletest exit ${code}; errors by code ${JSON.stringify(report.errors)}`);
  if (code !== 0) process.exitCode = 1;
} finally {
  await server.stop();
  await db.end();
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch((err: Error) => console.error(`dropping ${dbName}: ${err.message}`));
  await admin.end();
}
