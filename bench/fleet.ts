/**
 * The fleet benchmark: N agents provisioned through the control API of a server started for that
 * alone, then `serve --workers 2` from dist/ (built first) started afresh on that PostgreSQL database (as after a restart)
 * and driven by two `agentprobe fleet` processes of N/2 each (Coder's steady workload: UpdateStats
 * every 30 s, BatchUpdateMetadata with 2 keys every 10 s, random phases). Prints agents, steady
 * RPC p50/p99/max (the Go probe's own measurement), server CPU (primary and workers, as % of one
 * core), peak RSS per agent, PostgreSQL transactions/s in the steady window, and the CPU of the
 * server, PostgreSQL and the probes over the whole run.
 *
 *   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test N=2000 node --import tsx bench/fleet.ts
 *
 * Env: N agents (2000), DURATION of the probes' steady run (2m), RAMP tunnels/s per fleet process
 * (500), WORKERS (2), AGENTGATE_INTEROP_KIT (the built kit, /work/kit), SERVE_ARGS (more serve
 * flags), NODE_ARGS (node flags of the server's processes, e.g. --cpu-prof), PROBE_GOMAXPROCS (1), PROBE_GOGC (off), PROBE_GOMEMLIMIT (6GiB) (bench/support/probe-env.ts says why),
 * PROBE_ARGS (more `agentprobe fleet` flags, e.g. "-metadata 1s -stats 0"), PROBE_LOG=prefix (keep each
 * probe's output in prefix.0, prefix.1),
 * KEEP_DB=name (keep the provisioned database and its tokens for the next run with that name and
 * N), SERVER_LOG=file (keep the server's log), NO_BUILD=1 (measure dist/ as it is, e.g. patched by hand). Needs `ulimit -n` above N/2 + a few hundred for
 * each process (each agent is one socket in a worker and one in a probe).
 */
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { parseDuration } from "../src/duration.js";
import { fleetTokens } from "./support/fleet-tokens.js";
import { probeEnv } from "./support/probe-env.js";
import { pgDelta, readPg } from "./support/pg-activity.js";
import { buildDist, procUsage, startServe } from "./support/serve-process.js";

const ADMIN_URL = process.env.BENCH_DATABASE_URL;
if (!ADMIN_URL) {
  console.error("set BENCH_DATABASE_URL to a PostgreSQL URL (a fresh database is made beside it)");
  process.exit(2);
}
const N = Number(process.env.N ?? 2000);
const DURATION = process.env.DURATION ?? "2m";
const RAMP = Number(process.env.RAMP ?? 500);
const WORKERS = Number(process.env.WORKERS ?? 2);
const KIT = process.env.AGENTGATE_INTEROP_KIT ?? "/work/kit";
/** More `serve` flags, split on spaces: e.g. SERVE_ARGS="--overload-lag 1h" to compare limits off and on. */
const SERVE_ARGS = (process.env.SERVE_ARGS ?? "").split(" ").filter(Boolean);
/** Node flags for the server's processes (workers inherit them), e.g. NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof". */
const NODE_ARGS = (process.env.NODE_ARGS ?? "").split(" ").filter(Boolean);
/** More `agentprobe fleet` flags, e.g. PROBE_ARGS="-metadata 1s -stats 0" to price an RPC alone on its tunnel. */
const PROBE_ARGS = (process.env.PROBE_ARGS ?? "").split(" ").filter(Boolean);
const FLEETS = 2;
const ADMIN_TOKEN = randomBytes(16).toString("hex");

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(file, args, { maxBuffer: 1 << 24 }, (err, stdout, stderr) => (err ? reject(new Error(`${file} ${args.join(" ")}: ${err.message}\n${stderr}`)) : resolve(stdout))),
  );
}

/** key=value pairs of a probe's summary line. */
function fields(line: string): Record<string, string> {
  return Object.fromEntries([...line.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!]));
}

/** KEEP_DB=name keeps the provisioned database (and its tokens) for the next run with the same name and N. */
const KEEP_DB = process.env.KEEP_DB;
const dbName = KEEP_DB ?? `agentgate_fleet_${randomBytes(4).toString("hex")}`;
const admin = new pg.Client({ connectionString: ADMIN_URL });
await admin.connect();
const dbUrl = new URL(ADMIN_URL);
dbUrl.pathname = `/${dbName}`;
const dir = await mkdtemp(join(tmpdir(), "agentgate-fleet-"));
const desc = join(dir, "agent.binpb");
await run("npx", ["--no-install", "buf", "build", "-o", desc]);
const tokens = await fleetTokens({ admin, dbName, dbUrl: dbUrl.href, keep: KEEP_DB !== undefined, workers: WORKERS, adminToken: ADMIN_TOKEN }, N);
// The measured server starts on the provisioned database, as after a restart.
// The server measured is the built one, as deployed (see buildDist).
if (process.env.NO_BUILD === undefined) await buildDist();
const server = await startServe({ workers: WORKERS, databaseUrl: dbUrl.href, adminToken: ADMIN_TOKEN, nodeArgs: NODE_ARGS, serveArgs: SERVE_ARGS, built: true });
const serverUsage = () => server.usage();

try {
  const files: string[] = [];
  for (let k = 0; k < FLEETS; k++) {
    const file = join(dir, `tokens-${k}.txt`);
    await writeFile(file, tokens.filter((_, i) => i % FLEETS === k).join("\n") + "\n");
    files.push(file);
  }
  const idle = await serverUsage();

  // The probes; the steady window starts once the ramps are surely over.
  const rampMs = (N / FLEETS / RAMP) * 1000;
  const steadyDelayMs = rampMs + 15_000;
  const durationMs = parseDuration(DURATION);
  console.error(`driving ${FLEETS} × ${N / FLEETS} agents: ramp ${Math.round(rampMs / 1000)} s, then ${DURATION} steady`);
  const runStart = { server: await serverUsage(), pg: await readPg(admin, dbName) };
  /** The probes' CPU seconds, as last sampled (their /proc entries go when they exit). */
  const probeCpu = new Map<number, number>();
  const probes = files.map(
    (file) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const p = spawn(`${KIT}/bin/agentprobe`, ["-url", server.url, "-desc", desc, "fleet", "-tokens", file, "-t", DURATION, "-ramp", String(RAMP), "-report", "30s", ...PROBE_ARGS], {
          stdio: ["ignore", "pipe", "pipe"],
          env: probeEnv(),
        });
        let out = "";
        probeCpu.set(p.pid!, 0);
        p.stdout.on("data", (c: Buffer) => (out += c));
        p.stderr.on("data", (c: Buffer) => (out += c));
        p.once("close", (code) => resolve({ code, out }));
      }),
  );
  let peakRss = 0;
  const sampler = setInterval(() => {
    void serverUsage().then((u) => (peakRss = Math.max(peakRss, u.rss)));
    for (const pid of probeCpu.keys()) void procUsage(pid).then((u) => u.cpu > 0 && probeCpu.set(pid, u.cpu));
  }, 1_000);
  await new Promise((r) => setTimeout(r, steadyDelayMs));
  const pgA = await readPg(admin, dbName);
  const cpuA = await serverUsage();
  // The steady window ends a few seconds before the probes stop.
  await new Promise((r) => setTimeout(r, Math.max(5_000, durationMs - 20_000)));
  const pgB = await readPg(admin, dbName);
  const cpuB = await serverUsage();
  const results = await Promise.all(probes);
  clearInterval(sampler);
  const runEnd = { server: await serverUsage(), pg: await readPg(admin, dbName) };
  const whole = pgDelta(runStart.pg, runEnd.pg);

  const window = pgDelta(pgA, pgB);
  const steadyLines = results.map((r) => fields(r.out.split("\n").find((l) => l.startsWith("fleet-steady:")) ?? ""));
  const summaries = results.map((r) => fields(r.out.split("\n").find((l) => l.startsWith("fleet:")) ?? ""));
  if (process.env.PROBE_LOG) await Promise.all(results.map((r, k) => writeFile(`${process.env.PROBE_LOG}.${k}`, r.out)));
  for (const r of results) {
    const tail = r.out.split("\n").filter((l) => l.startsWith("fleet") || l.startsWith("  first ")).slice(-6).join("\n");
    console.error(`probe exit ${r.code}:\n${tail}`);
  }
  const rows = [
    ["agents", "steady p50", "steady p99", "steady max", "connected at end", "server CPU", "RSS per agent", "PG tx/s"],
    [
      String(N),
      steadyLines.map((s) => s.p50 ?? "?").join(" / "),
      steadyLines.map((s) => s.p99 ?? "?").join(" / "),
      steadyLines.map((s) => s.max ?? "?").join(" / "),
      String(summaries.reduce((n, s) => n + Number(s.connected_at_end ?? 0), 0)),
      `${Math.round(((cpuB.cpu - cpuA.cpu) / window.seconds) * 100)} % of a core`,
      `${Math.round((peakRss - idle.rss) / N / 1024)} KB (peak ${Math.round(peakRss / 1024 / 1024)} MiB)`,
      `${Math.round(window.statements / window.seconds)}`,
    ],
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  console.log(rows.map((r) => "| " + r.map((c, i) => c.padEnd(widths[i]!)).join(" | ") + " |").join("\n"));
  console.log(`probe summaries: ${summaries.map((s) => JSON.stringify(s)).join(" ")}`);
  const cores = (cpu: number) => `${(cpu / whole.seconds).toFixed(2)} cores`;
  console.log(
    `CPU over the whole ${Math.round(whole.seconds)} s run: server ${cores(runEnd.server.cpu - runStart.server.cpu)}, PostgreSQL ${whole.cpuCores.toFixed(2)} cores, ` +
      `probes ${cores([...probeCpu.values()].reduce((a, b) => a + b, 0))}; PG statements ${whole.statements} (${Math.round(whole.statements / whole.seconds)}/s)`,
  );
  console.log(`server: ${server.trouble.workerExits} worker exits, ${server.trouble.warnings} warnings${server.trouble.warnings > 0 ? `, the last: ${server.trouble.lastWarning}` : ""}`);
  if (results.some((r) => r.code !== 0)) process.exitCode = 1;
  console.log(`(fleet p50/p99/max per probe process; server CPU and PG tx/s over the ${Math.round(window.seconds)} s steady window; RSS: primary + workers at peak, minus before the agents)`);
} finally {
  await server.stop();
  if (KEEP_DB === undefined) await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch((err: Error) => console.error(`dropping ${dbName}: ${err.message}`));
  await admin.end();
  await rm(dir, { recursive: true, force: true });
}
