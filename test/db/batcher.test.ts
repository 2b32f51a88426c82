import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, it } from "node:test";
import { pino } from "pino";
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
    const b = new Batcher<number>({ name: "t", maxItems: 1, maxAttempts: 1, intervalMs: HOUR, flush: async () => { throw new Error("boom"); } });
    assert.equal(b.add(1), true);
    await b.close();
    assert.deepEqual([b.counters().flushErrors, b.counters().failedItems, b.counters().flushes], [1, 1, 0]);
    assert.equal(b.counters().droppedBy.retries_exhausted, 1);
  });

  it("a flush failing N times then succeeding loses nothing, and keeps the order", async () => {
    const written: number[][] = [];
    let failuresLeft = 3;
    const b = new Batcher<number>({
      name: "t", maxItems: 2, maxQueue: 10, intervalMs: HOUR, retryBaseMs: 1, retryMaxMs: 4,
      flush: async (items) => {
        if (failuresLeft-- > 0) throw new Error("database unavailable");
        written.push(items);
      },
    });
    for (const i of [1, 2, 3, 4, 5]) b.add(i);
    await b.close();
    assert.deepEqual(written.flat(), [1, 2, 3, 4, 5]);
    const c = b.counters();
    assert.deepEqual([c.flushErrors, c.failedItems, c.dropped, c.flushedItems], [3, 0, 0, 5]);
  });

  it("a flush failing on its data (SQLSTATE class 22/23) is not retried: the batch is dropped at once as rejected, the next goes", async () => {
    const written: number[] = [];
    let flushes = 0;
    const b = new Batcher<number>({
      name: "t", maxItems: 1, intervalMs: HOUR, retryBaseMs: 1,
      flush: async (items) => {
        flushes++;
        if (items[0] === 1) throw Object.assign(new Error("value out of range for type bigint"), { code: "22003" });
        written.push(...items);
      },
    });
    b.add(1);
    b.add(2);
    await b.close();
    assert.deepEqual([written, flushes], [[2], 2]);
    assert.deepEqual([b.counters().droppedBy.rejected, b.counters().failedItems], [1, 1]);
  });

  it("an item that fails maxAttempts flushes is dropped and counted as retries_exhausted; later items still go", async () => {
    const written: number[] = [];
    let failing = true;
    let attempts = 0;
    let sawLastAttempt!: () => void;
    const lastAttempt = new Promise<void>((resolve) => (sawLastAttempt = resolve));
    const b = new Batcher<number>({
      name: "t", maxItems: 1, maxAttempts: 3, intervalMs: HOUR, retryBaseMs: 1,
      flush: async (items) => {
        if (failing) {
          if (++attempts === 3) sawLastAttempt();
          throw new Error("down");
        }
        written.push(...items);
      },
    });
    b.add(1);
    await lastAttempt;
    failing = false;
    b.add(2);
    await b.close();
    assert.deepEqual(written, [2]);
    const c = b.counters();
    assert.deepEqual([attempts, c.failedItems, c.droppedBy.retries_exhausted, c.dropped], [3, 1, 1, 1]);
  });

  it("retried batches stay within maxQueue: what arrives while the writes fail fills the rest, the surplus is dropped", async () => {
    let fail = true;
    let failed!: () => void;
    const firstFailure = new Promise<void>((resolve) => (failed = resolve));
    const written: number[] = [];
    const b = new Batcher<number>({
      name: "t", maxItems: 2, maxQueue: 4, intervalMs: HOUR, retryBaseMs: 60_000,
      flush: async (items) => {
        if (fail) {
          failed();
          throw new Error("down");
        }
        written.push(...items);
      },
    });
    b.add(1);
    b.add(2);
    await firstFailure;
    // 1 and 2 wait again first in line; two more fit, the rest is refused.
    const accepted = [3, 4, 5, 6].map((i) => b.add(i));
    assert.deepEqual(accepted, [true, true, false, false]);
    assert.equal(b.counters().queued, 4);
    fail = false;
    await b.close();
    assert.deepEqual(written, [1, 2, 3, 4]);
    assert.equal(b.counters().droppedBy.queue_full, 2);
  });

  it("keyed: a newer item of a key that arrives during the retry wait is written instead of the failed one", async () => {
    let fail = true;
    let failed!: () => void;
    const firstFailure = new Promise<void>((resolve) => (failed = resolve));
    const written: string[] = [];
    const b = new Batcher<{ k: string; v: number }>({
      name: "t", maxItems: 1, intervalMs: HOUR, retryBaseMs: 60_000, key: (x) => x.k,
      flush: async (items) => {
        if (fail) {
          failed();
          throw new Error("down");
        }
        written.push(...items.map((x) => `${x.k}=${x.v}`));
      },
    });
    b.add({ k: "a", v: 1 });
    await firstFailure;
    b.add({ k: "a", v: 2 });
    fail = false;
    await b.close();
    assert.deepEqual(written, ["a=2"]);
  });

  it("fair share: one group flooding the queue can't push out another's items; the drops are counted as group_full", async () => {
    const written: { g: string; n: number }[] = [];
    let release!: () => void;
    const blocked = new Promise<void>((resolve) => (release = resolve));
    let first = true;
    const b = new Batcher<{ g: string; n: number }>({
      name: "t", maxItems: 5, maxQueue: 20, maxPerGroup: 5, intervalMs: HOUR, group: (x) => x.g,
      flush: async (items) => {
        if (first) {
          first = false;
          await blocked;
        }
        written.push(...items);
      },
    });
    // The flood: 1,000 items of one group while the first flush is stuck.
    let floodAccepted = 0;
    for (let n = 0; n < 1000; n++) if (b.add({ g: "flood", n })) floodAccepted++;
    const quiet = Array.from({ length: 5 }, (_, n) => b.add({ g: "quiet", n }));
    assert.deepEqual(quiet, [true, true, true, true, true], "the other group still has its share");
    assert.equal(floodAccepted, 10, "one batch in the flush, then its share of the queue");
    release();
    await b.close();
    assert.equal(written.filter((x) => x.g === "quiet").length, 5);
    const c = b.counters();
    assert.deepEqual([c.droppedBy.group_full, c.droppedBy.queue_full, c.dropped], [990, 0, 990]);
  });

  it("drops are warned about at most once per interval, each line with the count since the last", async () => {
    const lines: { msg: string; dropped?: Record<string, number> }[] = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    let release!: () => void;
    const blocked = new Promise<void>((resolve) => (release = resolve));
    const b = new Batcher<number>({ name: "t", maxItems: 1, maxQueue: 1, intervalMs: HOUR, warnIntervalMs: HOUR, logger, flush: () => blocked });
    for (let i = 0; i < 5_000; i++) b.add(i);
    const warnings = () => lines.filter((l) => l.msg === "batcher dropped items");
    assert.equal(warnings().length, 1, "one line for the first drop, then quiet for the interval");
    assert.deepEqual(warnings()[0]!.dropped, { queue_full: 1 });
    release();
    await b.close();
    // close logs what the interval held back, in one line.
    assert.equal(warnings().length, 2);
    assert.deepEqual(warnings()[1]!.dropped, { queue_full: 4_997 });
    assert.equal(b.counters().dropped, 4_998);
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
