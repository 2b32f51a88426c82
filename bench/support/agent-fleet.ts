/**
 * Simulated agents in their own process, so the server's process and CPU are its own. Started
 * with fork() by bench/agentapi.ts and driven over IPC:
 *
 *   {connect: {url, agents: [{token, logSourceId}]}}  dial every agent (50 at a time) → {connected}
 *   {logs: {batches, lines}}      every agent sends `batches` BatchCreateLogs of `lines` lines, all
 *                                 agents at once → {seconds, rpcs, exceeded, failures, p50, p99}
 *   {steady: {statsEveryMs, metadataEveryMs}}  start each agent's UpdateStats and
 *                                 BatchUpdateMetadata timers, phases spread → {started}
 *   "count"                       → {rpcs, failures, cpuMicros} so far
 *   "stop"                        close every tunnel and exit.
 */
import { Log_Level } from "../../gen/coder/agent/v2/agent_pb.js";
import { connectAgent, type AgentConnection } from "../../src/client/index.js";

/** Dials at a time: the point is the RPCs, not a dial storm. */
const DIAL_GROUP = 50;

type Msg =
  | { connect: { url: string; agents: { token: string; logSourceId?: string }[] } }
  | { logs: { batches: number; lines: number } }
  | { steady: { statsEveryMs: number; metadataEveryMs: number } }
  | "count"
  | "stop";

let conns: { conn: AgentConnection; source: Uint8Array }[] = [];
const timers: NodeJS.Timeout[] = [];
let rpcs = 0;
let failures = 0;
let lastError = "";

const reply = (m: unknown) => process.send!(m);

process.on("message", async (msg: Msg) => {
  if (msg === "count") return reply({ rpcs, failures, lastError, cpuMicros: cpuMicros() });
  if (msg === "stop") {
    for (const t of timers) clearTimeout(t);
    await Promise.all(conns.map((c) => c.conn.close()));
    process.exit(0);
  }
  if ("connect" in msg) {
    const { url, agents } = msg.connect;
    for (let i = 0; i < agents.length; i += DIAL_GROUP) {
      const group = agents.slice(i, i + DIAL_GROUP).map((a) => ({
        conn: connectAgent({ url, token: a.token }),
        source: new Uint8Array(Buffer.from((a.logSourceId ?? "").replaceAll("-", "").padEnd(32, "0"), "hex")),
      }));
      await Promise.all(group.map((c) => c.conn.ready()));
      conns.push(...group);
    }
    return reply({ connected: conns.length });
  }
  if ("logs" in msg) return reply(await sendLogs(msg.logs.batches, msg.logs.lines));
  if ("steady" in msg) {
    startSteady(msg.steady.statsEveryMs, msg.steady.metadataEveryMs);
    return reply({ started: true });
  }
});

function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

async function sendLogs(batches: number, lines: number) {
  const logs = Array.from({ length: lines }, (_, i) => ({ output: `line ${i} of a build step, some output ${"x".repeat(20)}`, level: Log_Level.INFO }));
  const latencies: number[] = [];
  let exceeded = 0;
  let failed = 0;
  const cpu0 = cpuMicros();
  const start = performance.now();
  await Promise.all(
    conns.map(async ({ conn, source }) => {
      for (let b = 0; b < batches; b++) {
        const t0 = performance.now();
        try {
          if ((await conn.agent.batchCreateLogs({ logSourceId: source, logs })).logLimitExceeded) exceeded++;
        } catch (err) {
          failed++;
          lastError = String(err);
        }
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0;
  return { seconds, rpcs: latencies.length, exceeded, failures: failed, lastError, p50: pct(0.5), p99: pct(0.99), cpuMicros: cpuMicros() - cpu0 };
}

function startSteady(statsEveryMs: number, metadataEveryMs: number): void {
  const call = (p: Promise<unknown>) =>
    p.then(
      () => void rpcs++,
      (err: unknown) => {
        failures++;
        lastError = String(err);
      },
    );
  const every = (ms: number, fn: () => void) => {
    // Spread each agent's phase over the interval, as independent agents would be.
    timers.push(setTimeout(() => timers.push(setInterval(fn, ms)), Math.random() * ms));
  };
  for (const { conn } of conns) {
    every(statsEveryMs, () => call(conn.agent.updateStats({ stats: { connectionCount: 0n, rxBytes: 1n } })));
    every(metadataEveryMs, () =>
      call(conn.agent.batchUpdateMetadata({ metadata: [{ key: "cpu", result: { value: `${Math.random()}` } }, { key: "mem", result: { value: "1 GiB" } }] })),
    );
  }
}
