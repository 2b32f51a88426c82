import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, it } from "node:test";
import { Batcher } from "../../src/db/batcher.js";
import { connectAgent, refreshAgentConnections, type ConnectionRefresh } from "../../src/db/queries/agent-connections.js";
import { getAgentById } from "../../src/db/queries/agents.js";
import { forEachEngine } from "../support/database.js";
import { makeWorkspace } from "../support/fixtures.js";

/** A flush function that records batches and lets a test await the next one. */
function recorder<T>() {
  const batches: T[][] = [];
  let waiters: (() => void)[] = [];
  return {
    batches,
    flush: async (items: T[]) => {
      batches.push(items);
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    },
    next: () => new Promise<void>((resolve) => waiters.push(resolve)),
  };
}

const HOUR = 3_600_000;

describe("Batcher", () => {
  it("flushes as soon as maxItems wait, without waiting for the interval", async () => {
    const r = recorder<number>();
    const b = new Batcher({ name: "t", maxItems: 3, intervalMs: HOUR, flush: r.flush });
    const flushed = r.next();
    for (const i of [1, 2, 3]) b.add(i);
    await flushed;
    assert.deepEqual(r.batches, [[1, 2, 3]]);
    await b.close();
  });

  it("flushes a partial batch once the interval has passed", async () => {
    const r = recorder<number>();
    const b = new Batcher({ name: "t", maxItems: 100, intervalMs: 20, flush: r.flush });
    const started = Date.now();
    const flushed = r.next();
    b.add(1);
    await flushed;
    assert.deepEqual(r.batches, [[1]]);
    assert.ok(Date.now() - started >= 15, "not before the interval");
    await b.close();
  });

  it("close flushes what is waiting, in batches of maxItems", async () => {
    const r = recorder<number>();
    const b = new Batcher({ name: "t", maxItems: 2, maxQueue: 10, intervalMs: HOUR, flush: r.flush });
    for (const i of [1, 2, 3, 4, 5]) b.add(i);
    await b.close();
    assert.deepEqual(r.batches.flat(), [1, 2, 3, 4, 5]);
    assert.ok(r.batches.every((batch) => batch.length <= 2));
    assert.equal(b.counters().flushedItems, 5);
  });

  it("a full queue drops and counts instead of growing", async () => {
    let release!: () => void;
    const blocked = new Promise<void>((resolve) => (release = resolve));
    const b = new Batcher<number>({ name: "t", maxItems: 2, maxQueue: 4, intervalMs: HOUR, flush: () => blocked });
    const accepted = Array.from({ length: 10 }, (_, i) => b.add(i));
    // 2 went into the (blocked) flush, 4 wait, 4 were dropped.
    assert.deepEqual(accepted, [true, true, true, true, true, true, false, false, false, false]);
    assert.deepEqual([b.counters().queued, b.counters().dropped], [4, 4]);
    release();
    await b.close();
  });

  it("a failing flush is logged and counted, never thrown into add or close", async () => {
    const b = new Batcher<number>({ name: "t", maxItems: 1, intervalMs: HOUR, flush: async () => { throw new Error("boom"); } });
    assert.equal(b.add(1), true);
    await b.close();
    assert.deepEqual([b.counters().flushErrors, b.counters().failedItems, b.counters().flushes], [1, 1, 0]);
  });

  it("close gives up after closeTimeoutMs and counts the unwritten items as failed", async () => {
    const b = new Batcher<number>({ name: "t", maxItems: 1, closeTimeoutMs: 30, intervalMs: HOUR, flush: () => new Promise(() => undefined) });
    b.add(1);
    b.add(2);
    await b.close();
    assert.equal(b.counters().failedItems, 1, "the waiting item; the hung one never finished");
    assert.equal(b.counters().flushErrors, 1);
  });

  it("add after close is refused and counted as dropped", async () => {
    const b = new Batcher<number>({ name: "t", maxItems: 1, intervalMs: HOUR, flush: async () => undefined });
    await b.close();
    assert.equal(b.add(1), false);
    assert.equal(b.counters().dropped, 1);
  });
});

forEachEngine((t) => {
  it("a batcher of connection refreshes writes many agents per statement", async () => {
    const f = await makeWorkspace(t.db, { agents: ["a", "b", "c", "d", "e"] });
    const at = new Date("2035-01-01T00:00:00Z");
    const replicaId = randomUUID();
    let statements = 0;
    const b = new Batcher<ConnectionRefresh>({
      name: "heartbeats", maxItems: 3, intervalMs: HOUR,
      flush: async (items) => {
        statements++;
        await refreshAgentConnections(t.db, replicaId, items);
      },
    });
    for (const a of f.agents) b.add({ agentId: a.id, connection: (await connectAgent(t.db, { id: a.id, replicaId, now: at }))!, at });
    await b.close();
    assert.equal(statements, 2);
    for (const a of f.agents) assert.deepEqual((await getAgentById(t.db, a.id))?.lastConnectedAt, at);
  });
});
