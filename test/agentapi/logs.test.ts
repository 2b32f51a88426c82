import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { Log_Level } from "../../gen/coder/agent/v2/agent_pb.js";
import { agentLogsChannel, workspaceOwnerChannel, type AgentLogsEvent, type WorkspaceEvent } from "../../src/db/events.js";
import { EXTERNAL_LOG_SOURCE } from "../../src/db/queries/log-sources.js";
import { LOG_LINE_OVERHEAD_BYTES, MAX_LOGS_LENGTH } from "../../src/db/queries/logs.js";
import { startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { recordEvents } from "../support/events.js";
import { assertCut, provisionAgent, rejectsWith, row, uuidBytes, withTunnel } from "./support.js";

const NIL_SOURCE = new Uint8Array(16);
/** The longest line `workspace_agent_logs.output` holds. */
const LINE_CHARS = 1024;

describe("BatchCreateLogs", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  before(async () => (srv = await startTestServer(t.db)));
  after(() => srv.close());
  const logRows = async (agentId: string) =>
    (await t.db.query<{ id: number; output: string; level: string; log_source_id: string; created_at: Date }>(
      "SELECT id, output, level, log_source_id, created_at FROM workspace_agent_logs WHERE agent_id = $1 ORDER BY id", [agentId],
    )).rows;
  const agentRow = (id: string) => row<{ logs_length: number; logs_overflowed: boolean }>(t.db, "SELECT logs_length, logs_overflowed FROM workspace_agents WHERE id = $1", [id]);

  test("stores a batch at server time, notifies agent-logs with created_after, and agt_first_logs only for the first batch", async () => {
    const a = await provisionAgent(t.db, { scripts: [{ display_name: "s", script: "true" }] });
    const source = (await row<{ log_source_id: string }>(t.db, "SELECT log_source_id FROM workspace_agent_scripts WHERE workspace_agent_id = $1", [a.agentId])).log_source_id;
    const logs = await recordEvents<AgentLogsEvent>(t.db.pubsub, agentLogsChannel(a.agentId));
    const ws = await recordEvents<WorkspaceEvent>(t.db.pubsub, workspaceOwnerChannel(a.ownerId));
    try {
      const agentTime = timestampFromDate(new Date("2001-01-01T00:00:00Z"));
      const before = Date.now();
      await withTunnel(srv.url, a.token, async (tun) => {
        const res = await tun.agent.batchCreateLogs({
          logSourceId: uuidBytes(source),
          logs: [
            { createdAt: agentTime, output: "one", level: Log_Level.INFO },
            { createdAt: agentTime, output: "two", level: Log_Level.ERROR },
            { createdAt: agentTime, output: "three", level: 42 as Log_Level },
          ],
        });
        assert.equal(res.logLimitExceeded, false);
        const first = await ws.next((e) => e.kind === "agt_first_logs");
        assert.deepEqual(first, { kind: "agt_first_logs", workspace_id: a.workspaceId, agent_id: a.agentId });
        const rows = await logRows(a.agentId);
        assert.deepEqual(rows.map((r) => [r.output, r.level, r.log_source_id]), [["one", "info", source], ["two", "error", source], ["three", "info", source]]);
        for (const r of rows) assert.ok(r.created_at.getTime() >= before - 1000, "server time, not the agent's");
        assert.deepEqual(await logs.next(() => true), { created_after: rows[0]!.id - 1 });
        assert.equal((await agentRow(a.agentId)).logs_length, "onetwothree".length + 3 * LOG_LINE_OVERHEAD_BYTES);

        await tun.agent.batchCreateLogs({ logSourceId: uuidBytes(source), logs: [{ output: "four", level: Log_Level.DEBUG }] });
        assert.deepEqual(await logs.next(() => true), { created_after: rows[2]!.id });
        assert.equal(ws.events.filter((e) => e.kind === "agt_first_logs").length, 0, "not the first logs any more");
      });
    } finally {
      logs.stop();
      ws.stop();
    }
  });

  test("a nil source id files the lines under the External source", async () => {
    const a = await provisionAgent(t.db);
    await withTunnel(srv.url, a.token, async (tun) => {
      await tun.agent.batchCreateLogs({ logSourceId: NIL_SOURCE, logs: [{ output: "legacy", level: Log_Level.INFO }] });
      await tun.agent.batchCreateLogs({ logSourceId: NIL_SOURCE, logs: [{ output: "again", level: Log_Level.INFO }] });
    });
    assert.deepEqual((await logRows(a.agentId)).map((r) => r.log_source_id), [EXTERNAL_LOG_SOURCE.id, EXTERNAL_LOG_SOURCE.id]);
    const src = await row<{ display_name: string; icon: string }>(t.db, "SELECT display_name, icon FROM workspace_agent_log_sources WHERE workspace_agent_id = $1 AND id = $2", [a.agentId, EXTERNAL_LOG_SOURCE.id]);
    assert.deepEqual(src, { display_name: "External", icon: "/emojis/1f310.png" });
  });

  test("an empty batch and a bad source id", async () => {
    const a = await provisionAgent(t.db);
    await withTunnel(srv.url, a.token, async (tun) => {
      assert.equal((await tun.agent.batchCreateLogs({ logSourceId: new Uint8Array(3), logs: [] })).logLimitExceeded, false);
      await rejectsWith(tun.agent.batchCreateLogs({ logSourceId: new Uint8Array(3), logs: [{ output: "x" }] }), Code.InvalidArgument, "parse log source ID");
    });
    assert.equal((await logRows(a.agentId)).length, 0);
  });

  test("a line of 1,024 characters is stored; one of 1,025 is rejected with an error saying so, and its batch with it", async () => {
    const a = await provisionAgent(t.db);
    await withTunnel(srv.url, a.token, async (tun) => {
      // Astral characters: 1,024 code points, 2,048 UTF-16 units.
      await tun.agent.batchCreateLogs({ logSourceId: NIL_SOURCE, logs: [{ output: "😀".repeat(LINE_CHARS) }] });
      await rejectsWith(
        tun.agent.batchCreateLogs({ logSourceId: NIL_SOURCE, logs: [{ output: "ok" }, { output: "y".repeat(LINE_CHARS + 1) }] }),
        Code.InvalidArgument,
        "log line 1 is 1025 characters long; the limit is 1024",
      );
    });
    assert.deepEqual((await logRows(a.agentId)).map((r) => [...r.output].length), [LINE_CHARS]);
  });

  test("the 1 MiB cap: up to it is stored; a batch crossing it stores nothing, flips the flag and publishes agt_logs_overflow; later calls answer at once", async () => {
    const a = await provisionAgent(t.db);
    const ws = await recordEvents<WorkspaceEvent>(t.db.pubsub, workspaceOwnerChannel(a.ownerId));
    const line = "z".repeat(LINE_CHARS - LOG_LINE_OVERHEAD_BYTES);
    try {
      await withTunnel(srv.url, a.token, async (tun) => {
        // Exactly the cap: 1,024 lines that count 1,024 bytes each with their overhead.
        const full = await tun.agent.batchCreateLogs({ logSourceId: NIL_SOURCE, logs: Array.from({ length: MAX_LOGS_LENGTH / LINE_CHARS }, () => ({ output: line })) });
        assert.equal(full.logLimitExceeded, false);
        assert.deepEqual(await agentRow(a.agentId), { logs_length: MAX_LOGS_LENGTH, logs_overflowed: false });
        const stored = (await logRows(a.agentId)).length;

        const over = await tun.agent.batchCreateLogs({ logSourceId: NIL_SOURCE, logs: [{ output: "a" }, { output: "b" }] });
        assert.equal(over.logLimitExceeded, true);
        const e = await ws.next((e) => e.kind === "agt_logs_overflow");
        assert.deepEqual(e, { kind: "agt_logs_overflow", workspace_id: a.workspaceId, agent_id: a.agentId });
        assert.deepEqual(await agentRow(a.agentId), { logs_length: MAX_LOGS_LENGTH, logs_overflowed: true });
        assert.equal((await logRows(a.agentId)).length, stored, "nothing of the crossing batch");

        // Every later call, even an empty one, is answered from the flag.
        assert.equal((await tun.agent.batchCreateLogs({ logSourceId: NIL_SOURCE, logs: [] })).logLimitExceeded, true);
        assert.equal((await tun.agent.batchCreateLogs({ logSourceId: new Uint8Array(1), logs: [{ output: "c" }] })).logLimitExceeded, true);
        assert.equal((await logRows(a.agentId)).length, stored);
      });
    } finally {
      ws.stop();
    }
  });

  test("a single batch over the cap on a fresh agent stores nothing and overflows", async () => {
    const a = await provisionAgent(t.db);
    const line = "q".repeat(LINE_CHARS);
    const res = await withTunnel(srv.url, a.token, (tun) =>
      tun.agent.batchCreateLogs({ logSourceId: NIL_SOURCE, logs: Array.from({ length: MAX_LOGS_LENGTH / LINE_CHARS + 1 }, () => ({ output: line })) }),
    );
    assert.equal(res.logLimitExceeded, true);
    assert.deepEqual(await agentRow(a.agentId), { logs_length: 0, logs_overflowed: true });
    assert.equal((await logRows(a.agentId)).length, 0);
  });

  test("an agent deleted mid-session has its tunnel cut; BatchCreateLogs after that stores nothing, for a real source and the legacy nil one", async () => {
    const a = await provisionAgent(t.db, { scripts: [{ display_name: "s", script: "true" }] });
    const source = (await row<{ log_source_id: string }>(t.db, "SELECT log_source_id FROM workspace_agent_scripts WHERE workspace_agent_id = $1", [a.agentId])).log_source_id;
    await withTunnel(srv.url, a.token, async (tun) => {
      await tun.agent.getServiceBanner({});
      await t.db.query("UPDATE workspace_agents SET deleted = true WHERE id = $1", [a.agentId]);
      await assertCut(tun, "workspace agent deleted");
      await assert.rejects(tun.agent.batchCreateLogs({ logSourceId: uuidBytes(source), logs: [{ output: "after delete" }] }));
      await assert.rejects(tun.agent.batchCreateLogs({ logSourceId: NIL_SOURCE, logs: [{ output: "after delete" }] }));
    });
    assert.equal((await logRows(a.agentId)).length, 0);
    assert.equal((await agentRow(a.agentId)).logs_length, 0);
  });
});
