import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { AGENT_METADATA_BATCH_CHANNEL, agentMetadataChannel, type AgentMetadataEvent } from "../../src/db/events.js";
import { updateMetadataAndNotify } from "../../src/db/queries/metadata.js";
import { createWorkspace } from "../../src/provision/provision.js";
import { parseWorkspaceSpec } from "../../src/provision/spec.js";
import { startTestServer, useTestDatabase, type TestServer } from "../support/agent-server.js";
import { Collector, recordEvents, type EventRecorder } from "../support/events.js";
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
      `SELECT d.key, coalesce(v.value, '') AS value, coalesce(v.error, '') AS error, v.collected_at
       FROM workspace_agent_metadata_descriptions d
       LEFT JOIN workspace_agent_metadata v ON v.workspace_agent_id = d.workspace_agent_id AND v.key = d.key
       WHERE d.workspace_agent_id = $1 ORDER BY d.key`, [agentId],
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

  test("the flush also announces each agent on workspace_agent_metadata:<agent> with the keys written and when they were collected", async () => {
    const a = await provisionAgent(t.db, declare("cpu", "mem", "disk"));
    const own = await recordEvents<AgentMetadataEvent>(t.db.pubsub, agentMetadataChannel(a.agentId));
    try {
      const before = Date.now();
      await withTunnel(srv.url, a.token, (tun) =>
        tun.agent.batchUpdateMetadata({ metadata: [{ key: "mem", result: { value: "1G" } }, { key: "cpu", result: { value: "5%" } }, { key: "undeclared", result: { value: "x" } }] }),
      );
      const event = await own.next(() => true);
      assert.deepEqual(event.keys, ["cpu", "mem"]);
      const collectedAt = new Date(event.collected_at);
      assert.ok(collectedAt.getTime() >= before - 1000 && collectedAt.getTime() <= Date.now(), `collected_at ${event.collected_at} is server time`);
      assert.equal(collectedAt.getTime(), (await metadata(a.agentId)).cpu!.collected_at.getTime());
    } finally {
      own.stop();
    }
  });

  test("results of one flush merge by agent and key, the newest winning", async () => {
    const a = await provisionAgent(t.db, declare("cpu"));
    const own = await recordEvents<AgentMetadataEvent>(t.db.pubsub, agentMetadataChannel(a.agentId));
    try {
      await withTunnel(srv.url, a.token, async (tun) => {
        await tun.agent.batchUpdateMetadata({ metadata: [{ key: "cpu", result: { value: "1" } }] });
        await tun.agent.batchUpdateMetadata({ metadata: [{ key: "cpu", result: { value: "2" } }, { key: "cpu", result: { value: "3" } }] });
      });
      // The two calls may land in one flush or two: read the value after each flush's event until the last is in.
      let value = "";
      while (value !== "3") {
        await own.next(() => true);
        value = (await metadata(a.agentId)).cpu!.value;
        assert.ok(["1", "3"].includes(value), `a flush wrote ${value}: within a call or a flush the newest wins`);
      }
    } finally {
      own.stop();
    }
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
    const notified = new Collector();
    const stop = await t.db.pubsub.subscribe(AGENT_METADATA_BATCH_CHANNEL, notified.onEvent, notified.onError);
    try {
      const now = new Date();
      const updates = ws.agents.map((a) => ({ agentId: a.id, key: "k", value: "v", error: "", collectedAt: now }));
      updates.push({ agentId: ws.agents[0]!.id, key: "undeclared", value: "x", error: "", collectedAt: now });
      updates.push({ agentId: "00000000-0000-4000-8000-000000000000", key: "k", value: "x", error: "", collectedAt: now });
      const result = await updateMetadataAndNotify(t.db, updates);
      assert.equal(result.rowsUpdated, 400);
      const payloads = (await notified.waitFor(3)).map((seen) => ("event" in seen ? seen.event : assert.fail(`unexpected ${String(seen.error)}`)));
      for (const p of payloads) assert.ok(Buffer.byteLength(p) < 8000, `payload of ${Buffer.byteLength(p)} bytes`);
      const ids = payloads.flatMap((p) => (JSON.parse(p) as BatchEvent).agent_ids).sort();
      assert.deepEqual(ids, ws.agents.map((a) => a.id).sort());
    } finally {
      stop();
    }
  });

  test("an agent whose changed keys pass one payload is announced on its own channel in several, each under 8,000 bytes", async () => {
    // 100 keys of 127 characters: about 13 KB of keys, more than one NOTIFY carries.
    const keys = Array.from({ length: 100 }, (_, i) => `k${String(i).padStart(3, "0")}`.padEnd(127, "é"));
    const spec = parseWorkspaceSpec({ agents: [{ name: "wide", metadata: keys.map((key) => ({ key, display_name: "k", script: "true" })) }] });
    const ws = await createWorkspace(t.db, { owner: "wide", name: "keys", spec });
    const agentId = ws.agents[0]!.id;
    const payloads = new Collector();
    const stop = await t.db.pubsub.subscribe(agentMetadataChannel(agentId), payloads.onEvent, payloads.onError);
    try {
      const now = new Date();
      await updateMetadataAndNotify(t.db, keys.map((key) => ({ agentId, key, value: "v", error: "", collectedAt: now })));
      const seen: AgentMetadataEvent[] = [];
      for (let n = 1; seen.flatMap((e) => e.keys).length < keys.length; n++) {
        const item = (await payloads.waitFor(n))[n - 1]!;
        assert.ok("event" in item, `no error expected: ${JSON.stringify(item)}`);
        assert.ok(Buffer.byteLength(item.event) < 8000, `payload of ${Buffer.byteLength(item.event)} bytes`);
        seen.push(JSON.parse(item.event) as AgentMetadataEvent);
      }
      assert.ok(seen.length > 1, "split into several payloads");
      for (const e of seen) assert.equal(new Date(e.collected_at).getTime(), now.getTime());
      assert.deepEqual(seen.flatMap((e) => e.keys).sort(), [...keys].sort());
    } finally {
      stop();
    }
  });
});
