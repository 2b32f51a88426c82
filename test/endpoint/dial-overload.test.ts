import assert from "node:assert/strict";
import { setImmediate as nextTurn } from "node:timers/promises";
import { test } from "node:test";
import { DialOverload } from "../../src/server/dial-overload.js";

test("a dial rate bound lets a burst's first tenth of a second through at once and the rest after, refusing none", async () => {
  const refusals: string[] = [];
  const overload = new DialOverload({ maxLagMs: 60_000, maxPendingDials: 100, maxDialsPerSecond: 20, onRefusal: (r) => refusals.push(r) });
  try {
    let started = 0;
    const dials = Array.from({ length: 6 }, () =>
      overload.admit(async () => {
        started++;
      }, () => false),
    );
    await nextTurn();
    // 20 per second: a tenth of a second's worth is 2 dials; the other 4 wait for the bucket to refill.
    assert.equal(started, 2);
    assert.equal(overload.pendingDials, 4);
    await Promise.all(dials);
    assert.equal(started, 6);
    assert.deepEqual(refusals, []);
  } finally {
    overload.close();
  }
});

test("without a rate bound a turn lets up to eight dials through", async () => {
  const overload = new DialOverload({ maxLagMs: 60_000, maxPendingDials: 100 });
  try {
    let started = 0;
    const dials = Array.from({ length: 10 }, () => overload.admit(async () => void started++, () => false));
    await nextTurn();
    assert.equal(started, 8);
    await Promise.all(dials);
    assert.equal(started, 10);
  } finally {
    overload.close();
  }
});
