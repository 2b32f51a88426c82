/**
 * Unary RPC cost through the agent tunnel (WebSocket → yamux → HTTP/2 → Connect or gRPC, and
 * DRPC with one fresh yamux stream per RPC, as stock Coder agents call) against the same handler
 * on the plain h2c port, in one run, with the server in its own process:
 * RPCs/s, p50/p99 latency at concurrency 1 and 32, and server CPU µs per RPC. Then the Go
 * probe (hashicorp yamux + grpc-go) against the tunnel and the plain port, on the lean unary path
 * on a second server with it off (--connect-unary) and a third whose tunnels speak HTTP/2 on
 * agentgate's own connection (--tunnel-http2 agentgate), and the kit's Go refserver as a
 * reference stack, with µs/RPC and the RPS ratio against the refserver. Then RSS per idle connected agent with IDLE_AGENTS connected.
 *
 *   node --import tsx bench/tunnel.ts                 # PGlite
 *   BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test node --import tsx bench/tunnel.ts
 *
 * Env: CALLS (per row, default 20000), IDLE_AGENTS (default 2000), AGENTGATE_INTEROP_KIT (the built
 * kit, for the Go rows; they are skipped without it).
 */
import { fork, spawn, execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { once } from "node:events";
import { promisify } from "node:util";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { Agent } from "../gen/coder/agent/v2/agent_pb.js";
import { connectAgent, type AgentConnection } from "../src/client/index.js";
import { dialTunnel } from "../src/client/dial.js";
import { CURRENT_API_VERSION } from "../src/protocol/agent-rpc.js";
import { createDrpcClient } from "../src/rpc/index.js";

const CALLS = Number(process.env.CALLS ?? 20_000);
const IDLE_AGENTS = Number(process.env.IDLE_AGENTS ?? 2_000);
const KIT = process.env.AGENTGATE_INTEROP_KIT;
const run = promisify(execFile);

interface Usage {
  cpuMicros: number;
  rss: number;
  heap: number;
  external: number;
  tunnels: number;
}

interface BenchServer {
  url: string;
  tokens: string[];
  usage(): Promise<Usage>;
  stop(): Promise<void>;
}

/** Forks a server process with `agents` provisioned agents. */
async function startServer(agents: number, env: Record<string, string> = {}): Promise<BenchServer> {
  const child = fork(new URL("./support/bench-server.ts", import.meta.url).pathname, [], {
    execArgv: ["--import", "tsx", "--expose-gc", "--trace-warnings"],
    env: { ...process.env, AGENTS: String(agents), ...env },
  });
  const [{ url, tokens }] = (await once(child, "message")) as [{ url: string; tokens: string[] }];
  return {
    url,
    tokens,
    async usage() {
      child.send("usage");
      return ((await once(child, "message")) as [Usage])[0];
    },
    async stop() {
      child.send("stop");
      await once(child, "exit");
    },
  };
}

const server = await startServer(1);
const { url, tokens } = server;
const usage = () => server.usage();

type Call = () => Promise<unknown>;
interface Row {
  path: string;
  concurrency: number;
  rps: number;
  p50: number;
  p99: number;
  cpuPerRpc: number;
}

/** CALLS calls, `concurrency` at a time; latencies in ms, server CPU from the server process. */
async function measure(path: string, call: Call, concurrency: number, calls = CALLS): Promise<Row> {
  for (let i = 0; i < 200; i++) await call();
  const latencies = new Float64Array(calls);
  let next = 0;
  const before = await usage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < calls; i = next++) {
        const t0 = performance.now();
        await call();
        latencies[i] = performance.now() - t0;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const after = await usage();
  latencies.sort();
  return {
    path,
    concurrency,
    rps: calls / elapsed,
    p50: latencies[Math.floor(calls * 0.5)]!,
    p99: latencies[Math.floor(calls * 0.99)]!,
    cpuPerRpc: (after.cpuMicros - before.cpuMicros) / calls,
  };
}

const token = tokens[0]!;
const withToken: Interceptor = (next) => (req) => {
  req.header.set("Coder-Session-Token", token);
  return next(req);
};
const plainConnect: Client<typeof Agent> = createClient(Agent, createConnectTransport({ baseUrl: url, httpVersion: "2", interceptors: [withToken] }));
const plainGrpc: Client<typeof Agent> = createClient(Agent, createGrpcTransport({ baseUrl: url, interceptors: [withToken] }));
const tunnelConnect: AgentConnection = connectAgent({ url, token });
const tunnelGrpc: AgentConnection = connectAgent({ url, token, protocol: "grpc" });
const drpcTunnel = await dialTunnel({ url: new URL(url), token, version: CURRENT_API_VERSION, keepaliveIntervalMs: 0 });
const tunnelDrpc = createDrpcClient(Agent, drpcTunnel.session);

const rows: Row[] = [];
for (const concurrency of process.env.SKIP_LOAD ? [] : [1, 32]) {
  rows.push(await measure("tunnel, Connect", () => tunnelConnect.agent.getServiceBanner({}), concurrency));
  rows.push(await measure("plain h2c, Connect", () => plainConnect.getServiceBanner({}), concurrency));
  rows.push(await measure("tunnel, gRPC", () => tunnelGrpc.agent.getServiceBanner({}), concurrency));
  rows.push(await measure("plain h2c, gRPC", () => plainGrpc.getServiceBanner({}), concurrency));
  rows.push(await measure("tunnel, DRPC", () => tunnelDrpc.getServiceBanner({}), concurrency));
}
await tunnelConnect.close();
await tunnelGrpc.close();
drpcTunnel.ws.close();
drpcTunnel.session.destroy();

const fmt = (n: number, d = 0) => n.toFixed(d).padStart(9);
console.log(`\nunary GetServiceBanner, ${CALLS} calls per row, server in its own process (Node client)`);
console.log("path                   conc      rps   p50 ms   p99 ms  server µs/rpc");
for (const r of rows) console.log(`${r.path.padEnd(22)} ${String(r.concurrency).padStart(4)} ${fmt(r.rps)} ${fmt(r.p50, 2)} ${fmt(r.p99, 2)} ${fmt(r.cpuPerRpc, 1)}`);
const at32 = (path: string) => rows.find((r) => r.path === path && r.concurrency === 32)!;
if (rows.length > 0) console.log(`tunnel/plain rps at c=32: Connect ${(at32("tunnel, Connect").rps / at32("plain h2c, Connect").rps).toFixed(2)}x, gRPC ${(at32("tunnel, gRPC").rps / at32("plain h2c, gRPC").rps).toFixed(2)}x (target >= 0.9x); DRPC/Connect in the tunnel ${(at32("tunnel, DRPC").rps / at32("tunnel, Connect").rps).toFixed(2)}x`);

if (KIT && !process.env.SKIP_LOAD) {
  const desc = `${process.env.TMPDIR ?? "/tmp"}/agentgate-bench-${process.pid}.binpb`;
  await run("npx", ["--no-install", "buf", "build", "-o", desc]);
  interface Soak {
    line: string;
    rps: number;
    usPerRpc: number;
  }
  const soak = async (args: string[], cpu: () => Promise<number>): Promise<Soak> => {
    const before = await cpu();
    const { stdout, stderr } = await run(`${KIT}/bin/agentprobe`, args, { maxBuffer: 1 << 24 });
    const after = await cpu();
    const line = (stdout + stderr).split("\n").find((l) => l.startsWith("soak:")) ?? "";
    const calls = Number(/ok=(\d+)/.exec(line)?.[1] ?? 0);
    const usPerRpc = (after - before) / Math.max(calls, 1);
    return { line: `${line.replace(/^soak: /, "")} server_us_per_rpc=${usPerRpc.toFixed(1)}`, rps: Number(/rps=([\d.]+)/.exec(line)?.[1] ?? 0), usPerRpc };
  };
  // The same server with every unary call through connect-node's router (--connect-unary).
  const fallback = await startServer(1, { CONNECT_UNARY: "1" });
  // And one whose tunnels speak HTTP/2 on agentgate's own connection (--tunnel-http2 agentgate).
  const own = await startServer(1, { TUNNEL_HTTP2: "agentgate" });
  const targets = [
    { name: "lean", url, token, cpu: async () => (await usage()).cpuMicros },
    { name: "connect", url: fallback.url, token: fallback.tokens[0]!, cpu: async () => (await fallback.usage()).cpuMicros },
    { name: "own-http2", url: own.url, token: own.tokens[0]!, cpu: async () => (await own.usage()).cpuMicros },
  ];
  const METHOD = "coder.agent.v2.Agent/GetAnnouncementBanners";
  const results = new Map<string, Soak>();
  console.log(`\nGo probe (hashicorp yamux + grpc-go), ${CALLS} calls of ${METHOD}; lean = the lean unary path, connect = --connect-unary, own-http2 = --tunnel-http2 agentgate`);
  for (const c of ["1", "32"]) {
    for (const target of targets) {
      const common = ["-url", target.url, "-token", target.token, "-desc", desc];
      for (const [where, extra] of [["tunnel", []], ["plain", ["-direct", target.url.slice(7)]]] as const) {
        const result = await soak([...common, ...extra, "soak", "-n", String(CALLS), "-c", c, METHOD, "{}"], target.cpu);
        results.set(`${target.name} ${where} ${c}`, result);
        console.log(`${`agentgate ${target.name} ${where}`.padEnd(26)} c=${c.padEnd(3)} ${result.line}`);
      }
    }
  }
  await fallback.stop();
  await own.stop();
  const ref = spawn(`${KIT}/bin/refserver`, ["-addr", "127.0.0.1:18766", "-token", "s3cret"], { stdio: "ignore" });
  await new Promise((r) => setTimeout(r, 500));
  const refCpu = async () => {
    const fields = readFileSync(`/proc/${ref.pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) * (1_000_000 / 100);
  };
  const refArgs = ["-url", "http://127.0.0.1:18766", "-token", "s3cret", "-desc", `${KIT}/echo.binpb`];
  for (const c of ["1", "32"]) {
    const result = await soak([...refArgs, "soak", "-n", String(CALLS), "-c", c, "interop.echo.v1.EchoService/Echo", '{"message":"x"}'], refCpu);
    results.set(`ref ${c}`, result);
    console.log(`${"Go refserver tunnel".padEnd(26)} c=${c.padEnd(3)} ${result.line}`);
  }
  const ref32 = results.get("ref 32")!;
  for (const name of ["lean", "connect", "own-http2"]) {
    const r = results.get(`${name} tunnel 32`)!;
    console.log(`${name} tunnel c=32: ${r.usPerRpc.toFixed(1)} µs/RPC (target <= 80), ${(r.rps / ref32.rps).toFixed(2)}x refserver rps (target >= 0.25x)`);
  }
  ref.kill();
}

await server.stop();

// Memory, in a fresh server process so the load above doesn't blur it: RSS with one agent
// connected (after GC), then with IDLE_AGENTS more, each with its tunnel and its one HTTP/2
// connection up and idle.
const fresh = await startServer(IDLE_AGENTS + 1);
const connectIdle = async (batch: string[]) => {
  const conns = batch.map((t) => connectAgent({ url: fresh.url, token: t, keepaliveIntervalMs: 0 }));
  await Promise.all(conns.map((c) => c.agent.getServiceBanner({})));
  return conns;
};
const idle = await connectIdle(fresh.tokens.slice(0, 1));
await new Promise((r) => setTimeout(r, 1_000));
const base = await fresh.usage();
for (let i = 1; i <= IDLE_AGENTS; i += 100) idle.push(...(await connectIdle(fresh.tokens.slice(i, Math.min(i + 100, IDLE_AGENTS + 1)))));
await new Promise((r) => setTimeout(r, 2_000));
const loaded = await fresh.usage();
const perAgentKb = (key: "rss" | "heap" | "external") => ((loaded[key] - base[key]) / 1024 / IDLE_AGENTS).toFixed(1);
console.log(`\nidle agents: ${loaded.tunnels} tunnels, server RSS ${(base.rss / 2 ** 20).toFixed(1)} MiB → ${(loaded.rss / 2 ** 20).toFixed(1)} MiB`);
console.log(`per idle agent: RSS ${perAgentKb("rss")} KB (target <= 48 KB), of which JS heap ${perAgentKb("heap")} KB, external ${perAgentKb("external")} KB`);
await Promise.all(idle.map((c) => c.close()));
await fresh.stop();
