import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { groupedStatement, roundsByKey } from "../../src/db/grouped-statement.js";

/** A statement runner whose runs finish when the test says, recording the keys of each. */
function heldRunner() {
  const runs: number[][] = [];
  const releases: Array<() => void> = [];
  const run = async (keys: readonly number[]) => {
    runs.push([...keys]);
    await new Promise<void>((r) => releases.push(r));
    return keys.map((k) => (k < 0 ? new Error(`bad key ${k}`) : k * 10));
  };
  const released = async (n: number) => {
    while (releases.length < n) await new Promise((r) => setImmediate(r));
    releases[n - 1]!();
  };
  return { runs, run, released };
}

describe("groupedStatement", () => {
  it("runs a lone key at once, and the keys that arrive while it runs as one statement after it", async () => {
    const h = heldRunner();
    const load = groupedStatement({ maxKeys: 100, maxInFlight: 1, run: h.run });
    const first = load(1);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(h.runs, [[1]]);
    const rest = [load(2), load(3), load(4)];
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(h.runs, [[1]], "nothing more runs while the first is in flight");
    await h.released(1);
    assert.equal(await first, 10);
    await h.released(2);
    assert.deepEqual(await Promise.all(rest), [20, 30, 40]);
    assert.deepEqual(h.runs, [[1], [2, 3, 4]]);
  });

  it("runs up to maxInFlight statements at once and splits keys at maxKeys", async () => {
    const h = heldRunner();
    const load = groupedStatement({ maxKeys: 2, maxInFlight: 2, run: h.run });
    const all = [1, 2, 3, 4, 5, 6, 7].map((k) => load(k));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(h.runs, [[1, 2], [3, 4]]);
    await h.released(1);
    await h.released(2);
    await h.released(3);
    await h.released(4);
    assert.deepEqual(await Promise.all(all), [10, 20, 30, 40, 50, 60, 70]);
    assert.deepEqual(h.runs, [[1, 2], [3, 4], [5, 6], [7]]);
  });

  it("with minIntervalMs, the keys of that long after a statement go together in the next", async () => {
    const runs: Array<{ keys: number[]; at: number }> = [];
    const load = groupedStatement({
      maxKeys: 100,
      maxInFlight: 1,
      minIntervalMs: 60,
      run: async (keys: readonly number[]) => {
        runs.push({ keys: [...keys], at: performance.now() });
        return [...keys];
      },
    });
    assert.equal(await load(1), 1);
    const second = load(2);
    await new Promise((r) => setTimeout(r, 5));
    const third = load(3);
    assert.deepEqual(await Promise.all([second, third]), [2, 3]);
    assert.deepEqual(runs.map((r) => r.keys), [[1], [2, 3]]);
    // Timers count from libuv's loop time, cached when the turn began, so they may fire a few ms
    // before 60 ms of performance.now() passed (58.7 ms seen in CI); without the interval the
    // second statement would start ~5 ms after the first.
    assert.ok(runs[1]!.at - runs[0]!.at >= 50, `the second started ${runs[1]!.at - runs[0]!.at} ms after the first`);
  });

  it("fails one key for its Error, and every key of a statement that throws", async () => {
    const mixed = groupedStatement({ maxKeys: 10, maxInFlight: 1, run: async (keys: readonly number[]) => keys.map((k) => (k < 0 ? new Error(`bad key ${k}`) : k)) });
    const [good, bad] = await Promise.allSettled([mixed(1), mixed(-1)]);
    assert.deepEqual(good, { status: "fulfilled", value: 1 });
    assert.equal(bad.status === "rejected" && (bad.reason as Error).message, "bad key -1");

    let calls = 0;
    const failing = groupedStatement({
      maxKeys: 10,
      maxInFlight: 1,
      run: async (keys: readonly number[]) => {
        if (calls++ === 0) throw new Error("database down");
        return [...keys];
      },
    });
    const results = await Promise.allSettled([failing(1), failing(2)]);
    assert.deepEqual(results.map((r) => r.status === "rejected" && (r.reason as Error).message), ["database down", "database down"]);
    assert.equal(await failing(3), 3, "the next statement runs after a failed one");
  });
});

describe("roundsByKey", () => {
  it("puts a repeated key in a later round, keeping each key's order", () => {
    const items = [
      { id: "a", n: 1 },
      { id: "b", n: 2 },
      { id: "a", n: 3 },
      { id: "a", n: 4 },
      { id: "c", n: 5 },
    ];
    assert.deepEqual(
      roundsByKey(items, (i) => i.id).map((r) => r.map((i) => i.n)),
      [[1, 2, 5], [3], [4]],
    );
  });
});
