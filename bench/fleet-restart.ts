/**
 * The reconnect storm seen by an outside client: N agents of two `agentprobe fleet` processes
 * (the interop kit's Go agents, which redial 1–2 s after a failed dial whatever Retry-After says)
 * on `serve --workers 2` from dist/ (built first); once every agent is connected the server is
 * stopped with SIGTERM (a graceful drain) and a new one started on the same port. Prints how
 * long the drain took, SIGTERM → the new server listening, and SIGTERM → every agent connected
 * again (the pool's `agentgate_agents_connected` from /metrics, polled every second), with the
 * probes' dial failures, drops and RPC errors over the run.
 *
 *   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test N=2000 node --import tsx bench/fleet-restart.ts
 *
 * Env: N agents (2000), RAMP tunnels/s per probe process for the first connect (500), WORKERS
 * (2), WAIT (5m: how long the new server gets to have every agent back), SERVE_ARGS (more serve
 * flags, both servers), NODE_ARGS (node flags of both servers' processes, e.g. --cpu-prof), AGENTGATE_INTEROP_KIT (/work/kit), PROBE_GOMAXPROCS (1), PROBE_GOGC (off), PROBE_GOMEMLIMIT (6GiB) (bench/support/probe-env.ts says why), KEEP_DB=name
 * (keep the provisioned database and its tokens, as bench/fleet.ts does; the same name shares
 * them), PROBE_LOG=prefix (keep each probe's output).
 */
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { get } from "node:http";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { parseDuration } from "../src/duration.js";
import { fleetTokens } from "./support/fleet-tokens.js";
import { probeEnv } from "./support/probe-env.js";
import { buildDist, freePort, startServe } from "./support/serve-process.js";

const ADMIN_URL = process.env.BENCH_DATABASE_URL;
if (!ADMIN_URL) {
  console.error("set BENCH_DATABASE_URL to a PostgreSQL URL (a fresh database is made beside it)");
  process.exit(2);
}
const N = Number(process.env.N ?? 2000);
const RAMP = Number(process.env.RAMP ?? 500);
const WORKERS = Number(process.env.WORKERS ?? 2);
const WAIT_MS = parseDuration(process.env.WAIT ?? "5m");
const SERVE_ARGS = (process.env.SERVE_ARGS ?? "").split(" ").filter(Boolean);
/** Node flags of both servers' processes, e.g. NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof". */
const NODE_ARGS = (process.env.NODE_ARGS ?? "").split(" ").filter(Boolean);
const KIT = process.env.AGENTGATE_INTEROP_KIT ?? "/work/kit";
const FLEETS = 2;
const ADMIN_TOKEN = randomBytes(16).toString("hex");
const KEEP_DB = process.env.KEEP_DB;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Agents the server holds now, summed over its workers; undefined when /metrics did not answer within 2 s. */
function connectedAgents(url: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = get(`${url}/metrics`, { agent: false, timeout: 2_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => {
        const m = /^agentgate_agents_connected (\d+)$/m.exec(body);
        resolve(m ? Number(m[1]) : undefined);
      });
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(undefined));
  });
}

/** Polls until the server holds `n` agents; the time it took, or undefined past `limitMs`. */
async function untilConnected(url: string, n: number, limitMs: number, everyMs: number): Promise<number | undefined> {
  const start = performance.now();
  while (performance.now() - start < limitMs) {
    if (((await connectedAgents(url)) ?? 0) >= n) return performance.now() - start;
    await sleep(everyMs);
  }
  return undefined;
}

/** key=value pairs of a probe's progress or summary line. */
function fields(line: string): Record<string, string> {
  return Object.fromEntries([...line.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!]));
}

const dbName = KEEP_DB ?? `agentgate_restart_${randomBytes(4).toString("hex")}`;
const admin = new pg.Client({ connectionString: ADMIN_URL });
await admin.connect();
const dbUrl = new URL(ADMIN_URL);
dbUrl.pathname = `/${dbName}`;
const dir = await mkdtemp(join(tmpdir(), "agentgate-restart-"));
const desc = join(dir, "agent.binpb");
await new Promise<void>((resolve, reject) => execFile("npx", ["--no-install", "buf", "build", "-o", desc], (err) => (err ? reject(err) : resolve())));
const tokens = await fleetTokens({ admin, dbName, dbUrl: dbUrl.href, keep: KEEP_DB !== undefined, workers: WORKERS, adminToken: ADMIN_TOKEN }, N);
await buildDist();
const serveOptions = { workers: WORKERS, databaseUrl: dbUrl.href, adminToken: ADMIN_TOKEN, listen: `127.0.0.1:${await freePort()}`, serveArgs: SERVE_ARGS, nodeArgs: NODE_ARGS, built: true };
let server = await startServe(serveOptions);
const probes: { kill: () => void; done: Promise<string> }[] = [];

try {
  for (let k = 0; k < FLEETS; k++) {
    const file = join(dir, `tokens-${k}.txt`);
    await writeFile(file, tokens.filter((_, i) => i % FLEETS === k).join("\n") + "\n");
    const p = spawn(`${KIT}/bin/agentprobe`, ["-url", server.url, "-desc", desc, "fleet", "-tokens", file, "-t", "1h", "-ramp", String(RAMP), "-report", "5s"], {
      stdio: ["ignore", "pipe", "pipe"],
      env: probeEnv(),
    });
    let out = "";
    p.stdout.on("data", (c: Buffer) => (out += c));
    p.stderr.on("data", (c: Buffer) => (out += c));
    probes.push({ kill: () => p.kill("SIGKILL"), done: new Promise((r) => p.once("close", () => r(out))) });
  }
  console.error(`waiting for ${N} agents to connect (ramp ${RAMP}/s per probe) ...`);
  const firstConnect = await untilConnected(server.url, N, 20 * 60_000, 1_000);
  if (firstConnect === undefined) throw new Error(`the ${N} agents did not all connect within 20 minutes`);
  await sleep(5_000);
  console.error(`all connected after ${(firstConnect / 1000).toFixed(1)} s; restarting the server under them`);

  const sigterm = performance.now();
  await server.stop();
  const drainedMs = performance.now() - sigterm;
  server = await startServe(serveOptions);
  const listeningMs = performance.now() - sigterm;
  // Once a second: a scrape of /metrics costs each worker of 10,000 agents ~9 ms (the default
  // metrics list its open files and handles), 3.5 % of it when polled every 250 ms.
  const back = await untilConnected(server.url, N, WAIT_MS, 1_000);
  const backMs = back === undefined ? undefined : listeningMs + back;
  await sleep(2_000);

  for (const p of probes) p.kill();
  const outs = await Promise.all(probes.map((p) => p.done));
  if (process.env.PROBE_LOG) await Promise.all(outs.map((o, k) => writeFile(`${process.env.PROBE_LOG}.${k}`, o)));
  const last = outs.map((o) => fields(o.split("\n").filter((l) => l.startsWith("fleet-progress:")).at(-1) ?? ""));
  const sum = (key: string) => last.reduce((n, f) => n + Number(f[key] ?? 0), 0);
  const seconds = (ms: number | undefined) => (ms === undefined ? `not all back in ${WAIT_MS / 1000} s` : `${(ms / 1000).toFixed(1)} s`);
  console.log(
    `| agents | old server drained | SIGTERM → listening | SIGTERM → all back | listening → all back | dial failures | drops | RPC errors |\n` +
      `| ${N} | ${seconds(drainedMs)} | ${seconds(listeningMs)} | ${seconds(backMs)} | ${seconds(back)} | ${sum("dial_failed")} | ${sum("dropped")} | ${sum("rpc_errors")} |`,
  );
  console.log("(dial failures, drops and RPC errors: the probes' last progress lines, the first connect included)");
  if (back === undefined) process.exitCode = 1;
} finally {
  for (const p of probes) p.kill();
  await server.stop();
  if (KEEP_DB === undefined) await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch((err: Error) => console.error(`dropping ${dbName}: ${err.message}`));
  await admin.end();
  await rm(dir, { recursive: true, force: true });
}
