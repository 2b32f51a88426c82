import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { AGENT_METADATA_BATCH_CHANNEL } from "../../src/db/events.js";
import { updateMetadataAndNotify } from "../../src/db/queries/metadata.js";
import { createWorkspace } from "../../src/provision/provision.js";
import { parseWorkspaceSpec } from "../../src/provision/spec.js";
import { eventually, startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { recordEvents, type EventRecorder } from "../support/events.js";
import { provisionAgent, rejectsWith, withTunnel } from "./support.js";

const LIMIT = { keys: 6144, value: 2048, error: 2048 };

interface BatchEvent {
  agent_ids: string[];
}

describe("BatchUpdateMetadata", () => {
  const t = useTestDatabase();
  let srv: TestServer;
  let batch: EventRecorder<BatchEvent>;
  before(async () => {
    srv = await startTestServer(t.db, { metadataFlushIntervalMs: 100 });
    batch = await recordEvents<BatchEvent>(t.db.pubsub, AGENT_METADATA_BATCH_CHANNEL);
  });
  after(async () => {
    batch.stop();
    await srv.close();
  });
  const metadata = async (agentId: string) => {
    const { rows } = await t.db.query<{ key: string; value: string; error: string; collected_at: Date }>(
      "SELECT key, value, error, collected_at FROM workspace_agent_metadata WHERE workspace_agent_id = $1 ORDER BY key", [agentId],
    );
    return Object.fromEntries(rows.map((r) => [r.key, r]));
  };
  const flushed = (agentId: string) => batch.next((e) => e.agent_ids.includes(agentId));
  const declare = (...keys: string[]) => ({ metadata: keys.map((key) => ({ key, display_name: key, script: "true", interval_seconds: 10, timeout_seconds: 1 })) });

  test("values land at server time and the flush announces the agent on workspace_agent_metadata_batch; undeclared keys are ignored", async () => {
    const a = await provisionAgent(t.db, declare("cpu", "mem"));
    const before = Date.now();
    await withTunnel(srv.url, a.token, (tun) =>
      tun.agent.batchUpdateMetadata({
        metadata: [
          { key: "cpu", result: { value: "42%", collectedAt: timestampFromDate(new Date("2001-01-01T00:00:00Z")) } },
          { key: "undeclared", result: { value: "nope" } },
        ],
      }),
    );
    await flushed(a.agentId);
    const rows = await metadata(a.agentId);
    assert.deepEqual(Object.keys(rows), ["cpu", "mem"]);
    assert.equal(rows.cpu!.value, "42%");
    assert.ok(rows.cpu!.collected_at.getTime() >= before - 1000, "server time, not the agent's");
    assert.equal(rows.mem!.value, "");
  });

  test("results of one flush merge by agent and key, the newest winning", async () => {
    const a = await provisionAgent(t.db, declare("cpu"));
    await withTunnel(srv.url, a.token, async (tun) => {
      await tun.agent.batchUpdateMetadata({ metadata: [{ key: "cpu", result: { value: "1" } }] });
      await tun.agent.batchUpdateMetadata({ metadata: [{ key: "cpu", result: { value: "2" } }, { key: "cpu", result: { value: "3" } }] });
    });
    await eventually(async () => ((await metadata(a.agentId)).cpu!.value === "3" ? true : undefined));
  });

  test("a value of 2,048 bytes is kept; 2,049 is truncated with an error saying so; an error over 2,048 bytes is replaced", async () => {
    const a = await provisionAgent(t.db, declare("at", "over", "err"));
    await withTunnel(srv.url, a.token, (tun) =>
      tun.agent.batchUpdateMetadata({
        metadata: [
          { key: "at", result: { value: "a".repeat(LIMIT.value) } },
          { key: "over", result: { value: "b".repeat(LIMIT.value + 1) } },
          { key: "err", result: { value: "v", error: "e".repeat(LIMIT.error + 1) } },
        ],
      }),
    );
    await flushed(a.agentId);
    const rows = await metadata(a.agentId);
    assert.deepEqual([rows.at!.value.length, rows.at!.error], [LIMIT.value, ""]);
    assert.deepEqual([rows.over!.value.length, rows.over!.error], [LIMIT.value, "value of 2049 bytes exceeded 2048 bytes"]);
    assert.deepEqual([rows.err!.value, rows.err!.error], ["v", "error of 2049 bytes exceeded 2048 bytes"]);
  });

  test("keys of 6,144 bytes in one call pass; past that the call is ResourceExhausted after writing the entries within the bound", async () => {
    // 64 keys of 96 bytes fill the budget exactly (the key column holds 127 characters).
    const keys = Array.from({ length: 64 }, (_, i) => `k${String(i).padStart(2, "0")}`.padEnd(96, "x"));
    const a = await provisionAgent(t.db, declare(...keys, "z"));
    await withTunnel(srv.url, a.token, async (tun) => {
      await tun.agent.batchUpdateMetadata({ metadata: keys.map((key) => ({ key, result: { value: "first" } })) });
      await flushed(a.agentId);
      await rejectsWith(
        tun.agent.batchUpdateMetadata({ metadata: [...keys, "z"].map((key) => ({ key, result: { value: "second" } })) }),
        Code.ResourceExhausted,
        "metadata keys of 6145 bytes exceeded 6144 bytes",
      );
      await flushed(a.agentId);
    });
    const rows = await metadata(a.agentId);
    assert.ok(keys.every((k) => rows[k]!.value === "second"), "the keys within the bound are written");
    assert.equal(rows.z!.value, "", "the key past the bound is dropped");
  });
});

describe("the metadata batcher's flush statement", () => {
  const t = useTestDatabase();

  test("announces 400 agents in chunks whose payloads stay under 8,000 bytes, only for agents whose rows changed", async () => {
    const spec = parseWorkspaceSpec({
      agents: Array.from({ length: 400 }, (_, i) => ({ name: `a${i}`, metadata: [{ key: "k", display_name: "k", script: "true" }] })),
    });
    const ws = await createWorkspace(t.db, { owner: "chunky", name: "many", spec });
    const payloads: string[] = [];
    const stop = await t.db.pubsub.subscribe(AGENT_METADATA_BATCH_CHANNEL, (p) => void payloads.push(p.toString("utf8")), () => undefined);
    try {
      const now = new Date();
      const updates = ws.agents.map((a) => ({ agentId: a.id, key: "k", value: "v", error: "", collectedAt: now }));
      updates.push({ agentId: ws.agents[0]!.id, key: "undeclared", value: "x", error: "", collectedAt: now });
      updates.push({ agentId: "00000000-0000-4000-8000-000000000000", key: "k", value: "x", error: "", collectedAt: now });
      const result = await updateMetadataAndNotify(t.db, updates, AGENT_METADATA_BATCH_CHANNEL);
      assert.equal(result.rowsUpdated, 400);
      await eventually(async () => (payloads.length === 3 ? true : undefined), 5_000, "three notifications");
      for (const p of payloads) assert.ok(Buffer.byteLength(p) < 8000, `payload of ${Buffer.byteLength(p)} bytes`);
      const ids = payloads.flatMap((p) => (JSON.parse(p) as BatchEvent).agent_ids).sort();
      assert.deepEqual(ids, ws.agents.map((a) => a.id).sort());
    } finally {
      stop();
    }
  });
});
