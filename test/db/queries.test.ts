import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { it } from "node:test";
import { NIL_UUID } from "../../src/db/enums.js";
import { getAgentById } from "../../src/db/queries/agents.js";
import { insertAppStatus, listAppStatuses } from "../../src/db/queries/app-statuses.js";
import { getAppBySlug, listAppsByAgentId, updateAppHealths, upsertApp } from "../../src/db/queries/apps.js";
import { getConnectionLog, upsertConnectionLog, type ConnectionEvent } from "../../src/db/queries/connection-logs.js";
import { insertDevcontainers, listDevcontainersByAgentId } from "../../src/db/queries/devcontainers.js";
import { EXTERNAL_LOG_SOURCE, insertLogSources, listLogSources } from "../../src/db/queries/log-sources.js";
import { insertLogBatch, listLogsAfter, LOG_LINE_OVERHEAD_BYTES, MAX_LOGS_LENGTH, setLogsOverflowed } from "../../src/db/queries/logs.js";
import { insertMetadataDescriptions, listMetadata } from "../../src/db/queries/metadata.js";
import { insertLogs, updateMetadata } from "../support/queries.js";
import { deleteStaleReplicas, listReplicas, upsertReplica } from "../../src/db/queries/replicas.js";
import { getMemoryMonitor, insertMemoryMonitor, insertVolumeMonitor, listVolumeMonitors, updateVolumeMonitor } from "../../src/db/queries/resource-monitors.js";
import { insertScriptTiming, listScriptTimings } from "../../src/db/queries/script-timings.js";
import { insertScripts, listScriptsByAgentId } from "../../src/db/queries/scripts.js";
import { getLatestStats, insertStats, type AgentStatsRow } from "../../src/db/queries/stats.js";
import { forEachEngine } from "../support/database.js";
import { makeWorkspace } from "../support/fixtures.js";

forEachEngine((t) => {
  const agent = async () => (await makeWorkspace(t.db)).agents[0]!;
  const now = new Date("2036-01-01T00:00:00Z");

  it("insertLogs writes the lines in order, adds their bytes and the per-line overhead to logs_length, and reports the length before", async () => {
    const a = await agent();
    const lines = [{ output: "héllo", level: "info" as const }, { output: "world", level: "error" as const }];
    const first = await insertLogs(t.db, { agentId: a.id, logSourceId: NIL_UUID, createdAt: now, lines });
    assert.equal(first.overflowed, false);
    assert.ok(!first.overflowed);
    assert.deepEqual(first.logs.map((l) => [l.output, l.level, l.createdAt]), [["héllo", "info", now], ["world", "error", now]]);
    assert.ok(first.logs[0]!.id < first.logs[1]!.id);
    assert.equal(first.previousLength, 0);
    const second = await insertLogs(t.db, { agentId: a.id, logSourceId: NIL_UUID, createdAt: now, lines: [{ output: "x", level: "debug" }] });
    assert.ok(!second.overflowed && second.previousLength === 11 + 2 * LOG_LINE_OVERHEAD_BYTES);
    assert.equal((await getAgentById(t.db, a.id))?.logsLength, 12 + 3 * LOG_LINE_OVERHEAD_BYTES);
    assert.deepEqual((await listLogsAfter(t.db, { agentId: a.id, afterId: first.logs[1]!.id })).map((l) => l.output), ["x"]);
  });

  it("insertLogs past 1,048,576 bytes reports overflow and keeps none of the batch", async () => {
    const a = await agent();
    // 1,024 lines that each count 1,024 bytes with their overhead: exactly the cap.
    const line = "y".repeat(1024 - LOG_LINE_OVERHEAD_BYTES);
    const fill = Array.from({ length: MAX_LOGS_LENGTH / 1024 }, () => ({ output: line, level: "info" as const }));
    const full = await insertLogs(t.db, { agentId: a.id, logSourceId: NIL_UUID, createdAt: now, lines: fill });
    assert.equal(full.overflowed, false);
    const over = await insertLogs(t.db, { agentId: a.id, logSourceId: NIL_UUID, createdAt: now, lines: [{ output: "z", level: "info" }, { output: "zz", level: "info" }] });
    assert.deepEqual(over, { overflowed: true });
    await setLogsOverflowed(t.db, a.id, true);
    const row = await getAgentById(t.db, a.id);
    assert.deepEqual([row?.logsLength, row?.logsOverflowed], [MAX_LOGS_LENGTH, true]);
  });

  it("a batch goes only under one of the agent's own log sources: another agent's or an unknown one stores nothing", async () => {
    const a = await agent();
    const b = await agent();
    const theirs = randomUUID();
    await insertLogSources(t.db, { agentId: b.id, createdAt: now, sources: [{ id: theirs, displayName: "b's", icon: "" }] });
    const lines = [{ output: "x", level: "info" as const }];
    assert.deepEqual(await insertLogBatch(t.db, { agentId: a.id, logSourceId: theirs, createdAt: now, lines }), { status: "source_not_found" });
    assert.deepEqual(await insertLogBatch(t.db, { agentId: a.id, logSourceId: randomUUID(), createdAt: now, lines }), { status: "source_not_found" });
    assert.equal((await getAgentById(t.db, a.id))?.logsLength, 0);
    assert.equal((await insertLogBatch(t.db, { agentId: b.id, logSourceId: theirs, createdAt: now, lines })).status, "stored");
  });

  it("insertLogs refuses a line over 1024 characters instead of truncating it", async () => {
    const a = await agent();
    await assert.rejects(insertLogs(t.db, { agentId: a.id, logSourceId: NIL_UUID, createdAt: now, lines: [{ output: "w".repeat(1025), level: "info" }] }), /too long/);
    assert.equal((await getAgentById(t.db, a.id))?.logsLength, 0);
  });

  it("a log source inserted twice stays one row", async () => {
    const a = await agent();
    await insertLogSources(t.db, { agentId: a.id, createdAt: now, sources: [EXTERNAL_LOG_SOURCE] });
    await insertLogSources(t.db, { agentId: a.id, createdAt: now, sources: [EXTERNAL_LOG_SOURCE] });
    assert.deepEqual((await listLogSources(t.db, a.id)).map((s) => [s.id, s.displayName]), [[EXTERNAL_LOG_SOURCE.id, "External"]]);
  });

  it("updateMetadata updates existing keys of many agents at once, ignores unknown keys, newest wins", async () => {
    const [a, b] = [await agent(), await agent()];
    for (const x of [a, b]) await insertMetadataDescriptions(t.db, x.id, [{ key: "cpu", displayName: "CPU", script: "top", intervalSeconds: 10, timeoutSeconds: 3 }]);
    const later = new Date(now.getTime() + 1000);
    const n = await updateMetadata(t.db, [
      { agentId: a.id, key: "cpu", value: "new", error: "", collectedAt: later },
      { agentId: a.id, key: "cpu", value: "old", error: "", collectedAt: now },
      { agentId: b.id, key: "cpu", value: "b", error: "e", collectedAt: now },
      { agentId: b.id, key: "nope", value: "?", error: "", collectedAt: now },
    ]);
    assert.equal(n, 2);
    const [ma] = await listMetadata(t.db, a.id);
    assert.deepEqual([ma?.value, ma?.collectedAt, ma?.interval, ma?.timeout], ["new", later, 10, 3]);
    const mb = await listMetadata(t.db, b.id);
    assert.deepEqual(mb.map((m) => [m.key, m.value, m.error]), [["cpu", "b", "e"]]);
  });

  it("insertStats writes many rows in one statement with JSON and bigint columns", async () => {
    const f = await makeWorkspace(t.db);
    const row: AgentStatsRow = {
      id: randomUUID(), createdAt: now, userId: f.owner.id, agentId: f.agents[0]!.id, workspaceId: f.workspace.id, templateId: null,
      connectionsByProto: { tcp: 2 }, connectionCount: 2, rxPackets: 1, rxBytes: 2 ** 40, txPackets: 3, txBytes: 4,
      connectionMedianLatencyMs: 1.5, sessionCountVscode: 1, sessionCountJetbrains: 0, sessionCountReconnectingPty: 0,
      sessionCountSsh: 1, usage: false, sessionCounts: { ssh: 1 },
    };
    await insertStats(t.db, [row, { ...row, id: randomUUID(), createdAt: new Date(now.getTime() - 1000) }]);
    assert.deepEqual(await getLatestStats(t.db, row.agentId), row);
  });

  it("apps: upsert by slug, health defaults from the health check, batched health update", async () => {
    const a = await agent();
    const app = await upsertApp(t.db, { id: randomUUID(), agentId: a.id, slug: "code", healthcheckUrl: "http://localhost:8080/healthz", healthcheckInterval: 5, healthcheckThreshold: 3, now });
    assert.equal(app.health, "initializing");
    const plain = await upsertApp(t.db, { id: randomUUID(), agentId: a.id, slug: "docs", url: "http://localhost:3000", now });
    assert.equal(plain.health, "disabled");
    await upsertApp(t.db, { id: randomUUID(), agentId: a.id, slug: "docs", displayName: "Docs", now });
    await updateAppHealths(t.db, [{ id: app.id, health: "healthy" }]);
    assert.deepEqual((await listAppsByAgentId(t.db, a.id)).map((x) => [x.slug, x.health, x.displayName]), [["code", "healthy", ""], ["docs", "disabled", "Docs"]]);
    await insertAppStatus(t.db, { id: randomUUID(), createdAt: now, agentId: a.id, appId: app.id, workspaceId: (await makeWorkspace(t.db)).workspace.id, state: "working", message: "m", uri: null });
    assert.deepEqual((await listAppStatuses(t.db, app.id)).map((s) => s.state), ["working"]);
    assert.equal((await getAppBySlug(t.db, a.id, "code"))?.id, app.id);
  });

  it("script timings are written only for a script of the named agent", async () => {
    const a = await agent();
    const script = { id: randomUUID(), workspaceAgentId: a.id, logSourceId: randomUUID(), logPath: "/tmp/s.log", createdAt: now, script: "echo hi", cron: "", startBlocksLogin: true, runOnStart: true, runOnStop: false, timeoutSeconds: 60, displayName: "hi" };
    await insertScripts(t.db, [script]);
    assert.deepEqual(await listScriptsByAgentId(t.db, a.id), [script]);
    const timing = { scriptId: script.id, startedAt: now, endedAt: new Date(now.getTime() + 5), exitCode: 0, stage: "start" as const, status: "ok" as const };
    assert.equal(await insertScriptTiming(t.db, a.id, timing), true);
    assert.deepEqual(await listScriptTimings(t.db, script.id), [timing]);
    assert.equal(await insertScriptTiming(t.db, a.id, { ...timing, scriptId: randomUUID() }), false, "unknown script");
    const other = await agent();
    assert.equal(await insertScriptTiming(t.db, other.id, { ...timing, startedAt: new Date(now.getTime() + 1) }), false, "another agent's script");
    assert.deepEqual(await listScriptTimings(t.db, script.id), [timing]);
  });

  it("devcontainers and resource monitors round-trip", async () => {
    const a = await agent();
    const dc = { id: randomUUID(), workspaceAgentId: a.id, createdAt: now, workspaceFolder: "/src", configPath: "/src/.devcontainer/devcontainer.json", name: "dev", subagentId: null };
    await insertDevcontainers(t.db, [dc]);
    assert.deepEqual(await listDevcontainersByAgentId(t.db, a.id), [dc]);
    await insertMemoryMonitor(t.db, { agentId: a.id, enabled: true, threshold: 80, now });
    await insertVolumeMonitor(t.db, { agentId: a.id, path: "/home", enabled: true, threshold: 90, now });
    await updateVolumeMonitor(t.db, { agentId: a.id, path: "/home", state: "NOK", debouncedUntil: now, now });
    assert.deepEqual([(await getMemoryMonitor(t.db, a.id))?.state, (await getMemoryMonitor(t.db, a.id))?.debouncedUntil], ["OK", new Date("0001-01-01T00:00:00Z")]);
    assert.deepEqual((await listVolumeMonitors(t.db, a.id)).map((v) => [v.path, v.state, v.threshold]), [["/home", "NOK", 90]]);
  });

  it("connection logs: connect inserts, the first disconnect fills in, a second changes nothing", async () => {
    const f = await makeWorkspace(t.db);
    const base: ConnectionEvent = {
      id: randomUUID(), connectionId: randomUUID(), action: "connect", time: now, workspaceOwnerId: f.owner.id,
      workspaceId: f.workspace.id, workspaceName: f.workspace.name, agentName: "main", agentId: f.agents[0]!.id,
      type: "ssh", ip: "127.0.0.1", code: null, reason: null,
    };
    await upsertConnectionLog(t.db, base);
    const d1 = new Date(now.getTime() + 1000);
    await upsertConnectionLog(t.db, { ...base, id: randomUUID(), action: "disconnect", time: d1, code: 0, reason: "bye" });
    await upsertConnectionLog(t.db, { ...base, id: randomUUID(), action: "disconnect", time: new Date(now.getTime() + 2000), code: 1, reason: "again" });
    const log = await getConnectionLog(t.db, base);
    assert.deepEqual([log?.connectTime, log?.disconnectTime, log?.code, log?.disconnectReason, log?.ip], [now, d1, 0, "bye", "127.0.0.1"]);
  });

  it("a disconnect with no connect inserts with connect_time = disconnect_time", async () => {
    const f = await makeWorkspace(t.db);
    const ev: ConnectionEvent = {
      id: randomUUID(), connectionId: randomUUID(), action: "disconnect", time: now, workspaceOwnerId: f.owner.id,
      workspaceId: f.workspace.id, workspaceName: f.workspace.name, agentName: "main", agentId: f.agents[0]!.id,
      type: "vscode", ip: null, code: 255, reason: null,
    };
    await upsertConnectionLog(t.db, ev);
    const log = await getConnectionLog(t.db, ev);
    assert.deepEqual([log?.connectTime, log?.disconnectTime, log?.code], [now, now, 255]);
  });

  it("replicas: upsert refreshes, stale ones are deleted", async () => {
    const id = randomUUID();
    await upsertReplica(t.db, { id, hostname: "a", startedAt: now, updatedAt: now });
    const later = new Date(now.getTime() + 60_000);
    await upsertReplica(t.db, { id, hostname: "a", startedAt: later, updatedAt: later });
    assert.deepEqual(await listReplicas(t.db, later), [{ id, hostname: "a", startedAt: now, updatedAt: later }]);
    assert.equal(await deleteStaleReplicas(t.db, new Date(later.getTime() + 1)), 1);
  });
});
