import { fork, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { duration, httpUrl, onOff, perSecond, text, tunnelProtocol, wholeNumber } from "../config/flag-kinds.js";
import { flag } from "../config/flag.js";
import { UsageError } from "../config/usage-error.js";
import { specToMessage } from "../control/spec-message.js";
import { parseWorkspaceSpec } from "../provision/spec.js";
import { LatencyHistogram } from "../scaletest/histogram.js";
import { metricsDelta, scrapeMetrics, type ScrapedMetrics } from "../scaletest/server-metrics.js";
import type { WorkloadProgress, WorkloadStart } from "../scaletest/workload-process.js";
import { defineCommand } from "./command-spec.js";
import { createControlClient, type ControlClient } from "./control-client.js";
import { jsonFlag } from "./json-flag.js";
import { table } from "./table.js";

/** Control API calls in flight while provisioning and deleting. */
const CONTROL_CONCURRENCY = 16;
/** How often load processes report, and the progress line is redrawn. */
const REPORT_INTERVAL_MS = 1_000;
/** After the ramp's own length, how long agents may take to all connect before the run starts anyway. */
const RAMP_SLACK_MS = 60_000;
/** How long a load process gets to close its tunnels and send its final counts. */
const STOP_TIMEOUT_MS = 60_000;

const workloadModule = new URL(`../scaletest/workload-process${import.meta.url.endsWith(".ts") ? ".ts" : ".js"}`, import.meta.url);

const REPORT_JSON = `--json prints one object: {"agents", "processes", "protocol", "ramp_ms" (until every agent first connected and had its manifest), "duration_ms", "connected_at_end", "dial_failures", "drops", "retry_after_refusals", "rpcs_lost_with_tunnel" (RPCs that failed because their tunnel went away: counted with the drop, not as errors), "rpcs", "errors" (by code), "latency_ms" {"p50", "p95", "p99", "max"} (steady: after every agent connected and had its manifest), "latency_all_ms", "server" {"cpu_seconds", "rss_bytes", "rpcs_by_code"} or null (from the /metrics of the replica that answered), "generator" {"cpu_seconds", "cpu_ms_per_agent_minute", "rss_bytes", "rss_bytes_per_agent"}, "reconnect_storm" {"dropped", "back_in_ms"} (with --reconnect-storm), "passed"}.

Exit 1 when an agent dropped (without --reconnect-storm), an RPC failed, or an agent was not connected at the end.`;

/**
 * `agentgate scaletest`: provisions a fleet through the control API, drives it with Coder's
 * steady agent workload from several processes, and reports what the agents and the server saw.
 */
export const scaletestCommand = defineCommand({
  name: "scaletest",
  summary: "load a server with a simulated fleet of agents and report",
  description: `Provisions --agents workspaces of one agent each through the control API of --url (metadata keys k0..k{K-1} declared), runs them in --processes child processes for --duration after they have all connected (--ramp new tunnels per second in all), and deletes them after unless --keep. Each agent fetches its manifest on every connection, sends UpdateStats every --stats-interval and BatchUpdateMetadata with --metadata-keys keys every --metadata-interval, its timers at random phases. On a terminal a progress line shows connected agents, RPC/s, the last interval's p50/p99, errors and drops.

With --reconnect-storm the run restarts nothing itself: restart the server during it, and the report says how long the fleet took to be all connected again (drops are then expected).`,
  flags: {
    url: flag(httpUrl, { required: true, help: "the server's base URL" }),
    "admin-token": flag(text, { placeholder: "TOKEN", secret: true, required: true, help: "the control API's bearer token" }),
    agents: flag(wholeNumber(1), { required: true, help: "agents in the fleet" }),
    duration: flag(duration, { required: true, help: "how long the steady workload runs once every agent connected" }),
    "stats-interval": flag(duration, { default: "30s", help: "UpdateStats period of each agent" }),
    "metadata-interval": flag(duration, { default: "10s", help: "BatchUpdateMetadata period of each agent" }),
    "metadata-keys": flag(wholeNumber(0), { default: "2", help: "metadata keys per BatchUpdateMetadata" }),
    ramp: flag(perSecond, { default: "500/s", help: "new tunnels per second, over all processes" }),
    processes: flag(wholeNumber(1), { default: "1", help: "load processes the agents are split over (one socket per agent each)" }),
    protocol: flag(tunnelProtocol, { default: "connect", help: "the RPC protocol inside the tunnels" }),
    keep: flag(onOff, { help: "leave the workspaces behind instead of deleting them" }),
    "reconnect-storm": flag(onOff, { help: "measure how long the fleet takes to come back after the server restarts" }),
    ...jsonFlag,
  },
  epilog: REPORT_JSON,
  async run({ values: v }) {
    if (v.processes > v.agents) throw new UsageError("--processes must be at most --agents");
    const url = v.url.href.replace(/\/$/, "");
    const tty = process.stderr.isTTY === true && !v.json;
    const say = (line: string) => process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
    const control = createControlClient({ url, adminToken: v["admin-token"] });
    const owner = `scaletest-${randomBytes(4).toString("hex")}`;
    const workspaces: string[] = [];
    try {
      const tokens = await provision(control, owner, v.agents, v["metadata-keys"], v["metadata-interval"], workspaces, (n) => say(`provisioning: ${n}/${v.agents} agents`));
      if (tty) process.stderr.write("\n");
      const report = await drive(url, tokens, {
        processes: v.processes,
        protocol: v.protocol,
        statsIntervalMs: v["stats-interval"],
        metadataIntervalMs: v["metadata-interval"],
        metadataKeys: v["metadata-keys"],
        rampPerSecond: v.ramp,
        durationMs: v.duration,
        storm: v["reconnect-storm"],
        say,
        tty,
      });
      if (tty) process.stderr.write("\n");
      process.stdout.write(v.json ? `${JSON.stringify(report)}\n` : formatReport(report));
      return report.passed ? 0 : 1;
    } finally {
      if (!v.keep && workspaces.length > 0) {
        await eachLimited(workspaces, CONTROL_CONCURRENCY, (id) => control.deleteWorkspace({ workspace: id }).then(() => undefined));
        if (!v.json) process.stderr.write(`deleted ${workspaces.length} workspaces of ${owner}\n`);
      }
    }
  },
});

/** Makes `count` workspaces of one agent each (metadata keys k0..) for `owner`; their ids go into `created` as they are made. */
export async function provision(
  control: ControlClient,
  owner: string,
  count: number,
  keys: number,
  metadataIntervalMs: number,
  created: string[],
  onProgress: (n: number) => void,
): Promise<string[]> {
  const spec = specToMessage(
    parseWorkspaceSpec({
      agents: [{ name: "main", metadata: Array.from({ length: keys }, (_, i) => ({ key: `k${i}`, script: "true", interval_seconds: Math.max(1, Math.round(metadataIntervalMs / 1000)) })) }],
    }),
  );
  const tokens: string[] = new Array(count);
  let done = 0;
  const create = async (i: number) => {
    const res = await control.createWorkspace({ owner, name: `w${i}`, spec });
    created.push(res.workspaceId);
    tokens[i] = res.agents[0]!.token;
    if (++done % 100 === 0 || done === count) onProgress(done);
  };
  // The first one makes the owner; concurrent first creates would race to insert it.
  await create(0);
  await eachLimited(Array.from({ length: count - 1 }, (_, i) => i + 1), CONTROL_CONCURRENCY, create);
  return tokens;
}

/** Runs `fn` on every item with at most `limit` in flight; the first failure stops new work and is thrown. */
async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const lane = async () => {
    while (failed === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failed !== undefined) throw failed;
}

interface DriveOptions {
  processes: number;
  protocol: WorkloadStart["protocol"];
  statsIntervalMs: number;
  metadataIntervalMs: number;
  metadataKeys: number;
  rampPerSecond: number;
  durationMs: number;
  storm: boolean;
  say(line: string): void;
  tty: boolean;
}

export interface ScaletestReport {
  agents: number;
  processes: number;
  protocol: string;
  ramp_ms: number | null;
  duration_ms: number;
  connected_at_end: number;
  dial_failures: number;
  drops: number;
  retry_after_refusals: number;
  /** RPCs that failed because their tunnel went away meanwhile (a drop's casualties, not RPC errors). */
  rpcs_lost_with_tunnel: number;
  rpcs: number;
  errors: Record<string, number>;
  latency_ms: Quantiles;
  latency_all_ms: Quantiles;
  server: { cpu_seconds: number; rss_bytes: number; rpcs_by_code: Record<string, number> } | null;
  generator: { cpu_seconds: number; cpu_ms_per_agent_minute: number; rss_bytes: number; rss_bytes_per_agent: number };
  reconnect_storm?: { dropped: number; back_in_ms: number | null };
  passed: boolean;
}

interface Quantiles {
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

function quantiles(h: LatencyHistogram): Quantiles {
  const r = (x: number) => Math.round(x * 100) / 100;
  return { p50: r(h.quantile(0.5)), p95: r(h.quantile(0.95)), p99: r(h.quantile(0.99)), max: r(h.max) };
}

function sum(rows: WorkloadProgress[], key: "connected" | "everConnected" | "dialFailures" | "drops" | "retryAfters" | "lostWithTunnel" | "rpcs" | "cpuMicros" | "rssBytes"): number {
  return rows.reduce((n, r) => n + r[key], 0);
}

async function drive(url: string, tokens: string[], o: DriveOptions): Promise<ScaletestReport> {
  const n = tokens.length;
  const before = await scrapeMetrics(url);
  const children: ChildProcess[] = [];
  const latest: WorkloadProgress[] = [];
  const finals: Promise<WorkloadProgress>[] = [];
  let onReport: (m: WorkloadProgress) => void = () => undefined;
  const started = performance.now();
  for (let k = 0; k < o.processes; k++) {
    const share = tokens.filter((_, i) => i % o.processes === k);
    const child = fork(workloadModule, { stdio: ["ignore", "inherit", "inherit", "ipc"], serialization: "advanced" });
    children.push(child);
    latest[k] = { type: "progress", connected: 0, everConnected: 0, dialFailures: 0, drops: 0, retryAfters: 0, lostWithTunnel: 0, rpcs: 0, errors: {}, interval: { counts: {}, max: 0 }, cpuMicros: 0, rssBytes: 0 };
    finals.push(
      new Promise((resolve, reject) => {
        child.on("message", (m: WorkloadProgress) => {
          if (m.type === "final") return resolve(m);
          latest[k] = m;
          onReport(m);
        });
        child.once("exit", (code) => reject(new Error(`load process ${k} exited with ${code} before its report`)));
      }),
    );
    const start: WorkloadStart = {
      type: "start",
      url,
      tokens: share,
      protocol: o.protocol,
      statsIntervalMs: o.statsIntervalMs,
      metadataIntervalMs: o.metadataIntervalMs,
      metadataKeys: o.metadataKeys,
      rampPerSecond: o.rampPerSecond / o.processes,
      reportIntervalMs: REPORT_INTERVAL_MS,
    };
    child.send(start);
  }
  // Avoid an unhandled rejection while the run goes on; awaited at the end.
  for (const f of finals) f.catch(() => undefined);

  // Progress: each load process reports every second; the line is redrawn once all of them did.
  let reported = 0;
  let interval = new LatencyHistogram();
  let lastRpcs = 0;
  let rampMs: number | undefined;
  let stormDropAt: number | undefined;
  let stormBackMs: number | undefined;
  let stormDropped = 0;
  let allConnected!: () => void;
  const connectedOnce = new Promise<void>((resolve) => (allConnected = resolve));
  onReport = (m) => {
    interval.merge(m.interval);
    if (++reported % o.processes !== 0) return;
    const connected = sum(latest, "connected");
    const now = performance.now();
    if (rampMs === undefined && sum(latest, "everConnected") === n) {
      rampMs = now - started;
      allConnected();
    }
    if (o.storm && rampMs !== undefined) {
      if (connected < n && stormDropAt === undefined) stormDropAt = now;
      if (stormDropAt !== undefined) stormDropped = Math.max(stormDropped, n - connected);
      if (stormDropAt !== undefined && stormBackMs === undefined && connected === n) stormBackMs = now - stormDropAt;
    }
    const rpcs = sum(latest, "rpcs");
    const errors = latest.reduce((e, r) => e + Object.values(r.errors).reduce((a, b) => a + b, 0), 0);
    o.say(
      `connected ${connected}/${n}  rpc/s ${Math.round(((rpcs - lastRpcs) * 1000) / REPORT_INTERVAL_MS)}  p50 ${interval.quantile(0.5).toFixed(1)} ms  p99 ${interval.quantile(0.99).toFixed(1)} ms  errors ${errors}  drops ${sum(latest, "drops")}  dial failures ${sum(latest, "dialFailures")}`,
    );
    lastRpcs = rpcs;
    interval = new LatencyHistogram();
  };

  const rampBudgetMs = (n / o.rampPerSecond) * 1000 + RAMP_SLACK_MS;
  await Promise.race([connectedOnce, new Promise((resolve) => setTimeout(resolve, rampBudgetMs).unref())]);
  const steadyStarted = performance.now();
  await new Promise((resolve) => setTimeout(resolve, o.durationMs));
  const durationMs = performance.now() - steadyStarted;
  const connectedAtEnd = sum(latest, "connected");
  for (const child of children) child.send({ type: "stop" });
  const stopTimer = setTimeout(() => children.forEach((c) => c.kill("SIGKILL")), STOP_TIMEOUT_MS);
  const rows = await Promise.all(finals);
  clearTimeout(stopTimer);
  // Once the load has stopped: an RPC the fleet counted is then surely counted by the server too.
  const after = await scrapeMetrics(url);

  const steady = new LatencyHistogram();
  const all = new LatencyHistogram();
  const errors: Record<string, number> = {};
  for (const r of rows) {
    steady.merge(r.steady!);
    all.merge(r.all!);
    for (const [code, c] of Object.entries(r.errors)) errors[code] = (errors[code] ?? 0) + c;
  }
  const drops = sum(rows, "drops");
  const cpuSeconds = sum(rows, "cpuMicros") / 1e6;
  const rss = sum(rows, "rssBytes");
  const elapsedMin = (performance.now() - started) / 60_000;
  const server = before !== undefined && after !== undefined ? metricsDelta(before, after) : undefined;
  const errorCount = Object.values(errors).reduce((a, b) => a + b, 0);
  return {
    agents: n,
    processes: o.processes,
    protocol: o.protocol,
    ramp_ms: rampMs === undefined ? null : Math.round(rampMs),
    duration_ms: Math.round(durationMs),
    connected_at_end: connectedAtEnd,
    dial_failures: sum(rows, "dialFailures"),
    drops,
    retry_after_refusals: sum(rows, "retryAfters"),
    rpcs_lost_with_tunnel: sum(rows, "lostWithTunnel"),
    rpcs: sum(rows, "rpcs"),
    errors,
    latency_ms: quantiles(steady),
    latency_all_ms: quantiles(all),
    server: server === undefined ? null : serverRow(server),
    generator: {
      cpu_seconds: round(cpuSeconds),
      cpu_ms_per_agent_minute: round((cpuSeconds * 1000) / n / elapsedMin),
      rss_bytes: rss,
      rss_bytes_per_agent: Math.round(rss / n),
    },
    ...(o.storm ? { reconnect_storm: { dropped: stormDropped, back_in_ms: stormBackMs === undefined ? null : Math.round(stormBackMs) } } : {}),
    passed: errorCount === 0 && connectedAtEnd === n && (o.storm || drops === 0),
  };
}

function serverRow(m: ScrapedMetrics): NonNullable<ScaletestReport["server"]> {
  return { cpu_seconds: round(m.cpuSeconds), rss_bytes: m.rssBytes, rpcs_by_code: m.rpcsByCode };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function formatReport(r: ScaletestReport): string {
  const ms = (q: Quantiles) => `p50 ${q.p50} / p95 ${q.p95} / p99 ${q.p99} / max ${q.max} ms`;
  const rows = [
    ["agents", `${r.agents} in ${r.processes} processes, ${r.protocol}`],
    ["ramp", r.ramp_ms === null ? "not every agent connected" : `${r.ramp_ms} ms until every agent connected and had its manifest`],
    ["steady run", `${r.duration_ms} ms`],
    ["connected at end", `${r.connected_at_end}`],
    ["dial failures", `${r.dial_failures} (${r.retry_after_refusals} of them 503 + Retry-After)`],
    ["RPCs lost with their tunnel", String(r.rpcs_lost_with_tunnel)],
    ["drops", `${r.drops}`],
    ["RPCs", `${r.rpcs}`],
    ["errors", Object.keys(r.errors).length === 0 ? "none" : Object.entries(r.errors).map(([c, n]) => `${c} ${n}`).join(", ")],
    ["steady latency", ms(r.latency_ms)],
    ["all latency", ms(r.latency_all_ms)],
    ["server CPU", r.server === null ? "unknown (no /metrics)" : `${r.server.cpu_seconds} s (the server's /metrics: every worker of it, not other replicas)`],
    ["server RSS", r.server === null ? "unknown" : `${Math.round(r.server.rss_bytes / 1024 / 1024)} MiB`],
    ["server RPCs", r.server === null ? "unknown" : Object.entries(r.server.rpcs_by_code).map(([c, n]) => `${c} ${n}`).join(", ") || "none"],
    ["generator", `${r.generator.cpu_seconds} s CPU (${r.generator.cpu_ms_per_agent_minute} ms per agent-minute), ${Math.round(r.generator.rss_bytes_per_agent / 1024)} KiB RSS per agent`],
  ];
  if (r.reconnect_storm) rows.push(["reconnect storm", r.reconnect_storm.back_in_ms === null ? `${r.reconnect_storm.dropped} dropped, not all back` : `${r.reconnect_storm.dropped} dropped, all back in ${r.reconnect_storm.back_in_ms} ms`]);
  rows.push(["result", r.passed ? "passed" : "FAILED"]);
  return table(rows);
}
