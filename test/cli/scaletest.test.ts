import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import type { ScaletestReport } from "../../src/cli/scaletest.js";
import { createControlClient } from "../../src/cli/control-client.js";
import { parseMetrics } from "../../src/scaletest/server-metrics.js";
import { LatencyHistogram } from "../../src/scaletest/histogram.js";
import { startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { runCli } from "../support/cli.js";

const MAIN = new URL("../../src/cli/main.ts", import.meta.url).pathname;

/** `agentgate scaletest ...`, given longer than runCli's minute: it provisions, ramps, runs and deletes. */
function runScaletest(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ["--import", "tsx", MAIN, ...args], { timeout: 170_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== "number") return reject(new Error(`${err.message}\n${stderr}`));
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
  });
}

const ADMIN_TOKEN = "scaletest-admin-token";

describe("scaletest's parts", () => {
  test("the latency histogram's quantiles are within one 5 % bucket and merge across processes", () => {
    const a = new LatencyHistogram();
    const b = new LatencyHistogram();
    for (let i = 1; i <= 100; i++) (i % 2 ? a : b).record(i);
    a.merge(b.snapshot());
    assert.equal(a.count, 100);
    assert.equal(a.max, 100);
    for (const [q, want] of [[0.5, 50], [0.99, 99]] as const) {
      const got = a.quantile(q);
      assert.ok(got >= want && got <= want * 1.05, `q${q}: ${got}`);
    }
  });

  test("reads CPU, RSS and RPCs by code from Prometheus text", () => {
    const m = parseMetrics(
      [
        "# HELP process_cpu_seconds_total x",
        "process_cpu_seconds_total 12.5",
        "process_resident_memory_bytes 1048576",
        'agentgate_rpcs_total{service="coder.agent.v2.Agent",method="UpdateStats",code="ok"} 7',
        'agentgate_rpcs_total{service="coder.agent.v2.Agent",method="GetManifest",code="ok"} 3',
        'agentgate_rpcs_total{service="coder.agent.v2.Agent",method="GetManifest",code="not_found"} 1',
      ].join("\n"),
    );
    assert.deepEqual(m, { cpuSeconds: 12.5, rssBytes: 1048576, rpcsByCode: { ok: 10, not_found: 1 } });
  });
});

describe("agentgate scaletest against a small fleet", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer(t.db, { adminToken: ADMIN_TOKEN });
  });
  after(() => srv.close());

  for (const protocol of ["connect", "drpc"] as const) {
    test(`50 agents over 2 processes (${protocol}): every agent connected, no drops or errors, the report in JSON, the workspaces deleted`, { timeout: 200_000 }, async () => {
      const result = await runScaletest([
        "scaletest", "--url", srv.url, "--admin-token", ADMIN_TOKEN, "--agents", "50", "--duration", "2s",
        "--stats-interval", "1s", "--metadata-interval", "1s", "--metadata-keys", "2", "--ramp", "100/s",
        "--processes", "2", "--protocol", protocol, "--json",
      ]);
      assert.equal(result.code, 0, result.stderr);
      const report = JSON.parse(result.stdout) as ScaletestReport;
      assert.equal(report.agents, 50);
      assert.equal(report.processes, 2);
      assert.equal(report.protocol, protocol);
      assert.equal(report.connected_at_end, 50);
      assert.equal(report.drops, 0);
      assert.equal(report.dial_failures, 0);
      assert.deepEqual(report.errors, {});
      assert.equal(report.passed, true);
      assert.notEqual(report.ramp_ms, null);
      // Every agent fetched its manifest, and the timers ran during the steady 2 s.
      assert.ok(report.rpcs >= 50 + 50, `rpcs ${report.rpcs}`);
      assert.ok(report.latency_ms.p50 > 0 && report.latency_ms.p50 <= report.latency_ms.p95 && report.latency_ms.p95 <= report.latency_ms.p99 && report.latency_ms.p99 <= report.latency_ms.max);
      assert.ok(report.server !== null, "the server's /metrics were read");
      assert.ok(report.server.cpu_seconds > 0 && report.server.rss_bytes > 0);
      assert.ok((report.server.rpcs_by_code.ok ?? 0) >= report.rpcs, `the server counted at least the fleet's RPCs: ${JSON.stringify(report.server.rpcs_by_code)} against ${report.rpcs}`);
      assert.ok(report.generator.cpu_seconds > 0 && report.generator.rss_bytes_per_agent > 0);
      const control = createControlClient({ url: srv.url, adminToken: ADMIN_TOKEN });
      const left = (await control.listAgents({})).agents.filter((a) => a.owner.startsWith("scaletest-"));
      assert.deepEqual(left, [], "the fleet's workspaces are deleted after the run");
    });
  }

  test("--processes above --agents is a usage error", async () => {
    const result = await runCli(["scaletest", "--url", srv.url, "--admin-token", ADMIN_TOKEN, "--agents", "2", "--duration", "1s", "--processes", "3"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--processes must be at most --agents/);
  });
});
