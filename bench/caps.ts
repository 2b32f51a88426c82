/**
 * The transport's limits: what they cost and what they stop, each server in a process of its own.
 *
 * 1. Throughput with the limits at their defaults against the same server with every limit out of
 *    reach, in the same run, interleaved: the Go probe's unary soak through a tunnel and on the
 *    plain h2c port (needs AGENTGATE_INTEROP_KIT).
 * 2. The attacks, against a server at its defaults: RSS reached while unauthenticated callers
 *    stall near-limit bodies, while one agent stalls near-limit bodies on many tunnel streams, and
 *    how long a slowloris connection dripping a byte a second lives.
 *
 *   node --import tsx bench/caps.ts
 *   SERVER_SOURCES=/path/to/older/checkout node --import tsx bench/caps.ts   # attacks only, against that tree's server
 *
 * Env: CALLS (per soak, default 20000), ROUNDS (soak rounds per server, default 2), PLAIN_CONNECTIONS
 * (default 50), TUNNEL_STREAMS (default 100), SLOWLORIS_GIVE_UP_MS (default 30000),
 * BENCH_DATABASE_URL (else PGlite).
 */
import { execFile, fork } from "node:child_process";
import { once } from "node:events";
import { promisify } from "node:util";
import { NEAR_LIMIT_BODY, rssOf, slowlorisLifetime, tunnelBodies, unauthenticatedBodies } from "../test/support/attacks.js";

const CALLS = Number(process.env.CALLS ?? 20_000);
const ROUNDS = Number(process.env.ROUNDS ?? 2);
const PLAIN_CONNECTIONS = Number(process.env.PLAIN_CONNECTIONS ?? 50);
const TUNNEL_STREAMS = Number(process.env.TUNNEL_STREAMS ?? 100);
const SLOWLORIS_GIVE_UP_MS = Number(process.env.SLOWLORIS_GIVE_UP_MS ?? 30_000);
const KIT = process.env.AGENTGATE_INTEROP_KIT;
const SOURCES = process.env.SERVER_SOURCES;
const run = promisify(execFile);
const MiB = 1024 * 1024;

/** Every limit out of reach: the same code paths, nothing ever refused. */
const LIMITS_OFF = {
  "header-timeout": "24h",
  "body-idle-timeout": "24h",
  "max-request-bytes-per-connection": "1024GiB",
  "max-request-bytes-per-agent": "1024GiB",
  "max-request-bytes": "1024GiB",
  "max-connections": "1000000",
  "connection-reserve": "0",
  "overload-lag": "24h",
  "max-pending-dials": "1000000",
};

interface BenchServer {
  url: string;
  tokens: string[];
  pid: number;
  cpuMicros(): Promise<number>;
  gc(): Promise<void>;
  stop(): Promise<void>;
}

async function startServer(flags: Record<string, string> = {}): Promise<BenchServer> {
  const root = SOURCES ?? new URL("..", import.meta.url).pathname;
  const child = fork(`${root}/bench/support/bench-server.ts`, [], {
    execArgv: ["--import", "tsx", "--expose-gc"],
    env: { ...process.env, AGENTS: "2", SERVER_FLAGS: JSON.stringify(flags) },
  });
  const [{ url, tokens }] = (await once(child, "message")) as [{ url: string; tokens: string[] }];
  const usage = async (msg: string) => {
    child.send(msg);
    return ((await once(child, "message")) as [{ cpuMicros: number }])[0];
  };
  return {
    url,
    tokens,
    pid: child.pid!,
    cpuMicros: async () => (await usage("usage-nogc")).cpuMicros,
    gc: async () => void (await usage("usage")),
    async stop() {
      child.send("stop");
      await once(child, "exit");
    },
  };
}

/** The highest RSS seen over `ms`: the server may still be reading what the attack sent. */
async function peakRss(pid: number, ms = 2_000): Promise<number> {
  let peak = rssOf(pid);
  for (const end = Date.now() + ms; Date.now() < end; ) {
    await new Promise((r) => setTimeout(r, 100));
    peak = Math.max(peak, rssOf(pid));
  }
  return peak;
}

const mib = (bytes: number) => `${(bytes / MiB).toFixed(0)} MiB`;

if (KIT && !SOURCES) {
  const desc = `${process.env.TMPDIR ?? "/tmp"}/agentgate-caps-${process.pid}.binpb`;
  await run("npx", ["--no-install", "buf", "build", "-o", desc]);
  const on = await startServer();
  const off = await startServer(LIMITS_OFF);
  const soak = async (srv: BenchServer, direct: boolean) => {
    const args = ["-url", srv.url, "-token", srv.tokens[0]!, "-desc", desc, ...(direct ? ["-direct", srv.url.slice(7)] : [])];
    const { stdout, stderr } = await run(`${KIT}/bin/agentprobe`, [...args, "soak", "-n", String(CALLS), "-c", "32", "coder.agent.v2.Agent/GetServiceBanner", "{}"], { maxBuffer: 1 << 24 });
    const line = (stdout + stderr).split("\n").find((l) => l.startsWith("soak:")) ?? "";
    return { rps: Number(/rps=([\d.]+)/.exec(line)?.[1] ?? 0), p99: /p99=(\S+)/.exec(line)?.[1] ?? "?", errors: Number(/errors=(\d+)/.exec(line)?.[1] ?? 0) };
  };
  console.log(`Throughput, Go probe soak ${CALLS} calls at c=32, GetServiceBanner, ${ROUNDS} interleaved rounds`);
  console.log("path     limits   rps      p99      errors");
  for (const direct of [false, true]) {
    const rps: Record<string, number[]> = { on: [], off: [] };
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, srv] of [["off", off], ["on", on]] as const) {
        const r = await soak(srv, direct);
        rps[name]!.push(r.rps);
        console.log(`${(direct ? "plain" : "tunnel").padEnd(8)} ${name.padEnd(8)} ${String(r.rps).padEnd(8)} ${r.p99.padEnd(8)} ${r.errors}`);
      }
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    console.log(`${direct ? "plain" : "tunnel"}: limits on / off = ${(mean(rps.on!) / mean(rps.off!)).toFixed(3)}`);
  }
  await on.stop();
  await off.stop();
}

const target = await startServer();
const port = Number(new URL(target.url).port);
console.log(`\nAttacks against ${SOURCES ? SOURCES : "this tree"} (defaults), RSS from /proc/${target.pid}/status`);
await target.gc();
const idle = rssOf(target.pid);
console.log(`idle RSS                                   ${mib(idle)}`);

const plain = await unauthenticatedBodies(port, PLAIN_CONNECTIONS, NEAR_LIMIT_BODY - 1);
console.log(`${PLAIN_CONNECTIONS} unauthenticated × 4 MiB − 2 bytes stalled  RSS ${mib(await peakRss(target.pid))} (${mib(PLAIN_CONNECTIONS * NEAR_LIMIT_BODY)} sent), refused ${plain.refused}`);
plain.release();

const tunnel = await tunnelBodies(target.url, target.tokens[1]!, TUNNEL_STREAMS, NEAR_LIMIT_BODY - 1);
console.log(`1 agent, ${TUNNEL_STREAMS} streams × 4 MiB − 2 bytes stalled   RSS ${mib(await peakRss(target.pid))} (${mib(TUNNEL_STREAMS * NEAR_LIMIT_BODY)} offered), refused ${tunnel.refused}`);
tunnel.release();
await target.gc();
console.log(`after both released and a GC              RSS ${mib(rssOf(target.pid))}`);

const lifetime = await slowlorisLifetime(port, 1_000, SLOWLORIS_GIVE_UP_MS);
console.log(`slowloris, 1 byte/s                        ${lifetime === undefined ? `still open after ${SLOWLORIS_GIVE_UP_MS / 1000} s` : `closed after ${(lifetime / 1000).toFixed(1)} s`}`);
await target.stop();
