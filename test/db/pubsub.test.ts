import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, it } from "node:test";
import { createServer, type AddressInfo } from "node:net";
import { openDatabase } from "../../src/db/database.js";
import { LISTENER_APPLICATION_NAME } from "../../src/db/engine-pg.js";
import {
  DEFAULT_SUBSCRIBER_QUEUE,
  MAX_PAYLOAD_BYTES,
  PubsubDroppedEventsError,
  PubsubListenerLostError,
  PubsubPayloadError,
} from "../../src/db/pubsub.js";
import { availableEngines, createTestDatabase, forEachEngine } from "../support/database.js";
import { Collector } from "../support/events.js";

/** A channel no other test in the file uses. */
const channel = () => `test:${randomUUID()}`;

forEachEngine((t) => {
  it("delivers published events to a subscriber in order", async () => {
    const ch = channel();
    const c = new Collector();
    const unsubscribe = await t.db.pubsub.subscribe(ch, c.onEvent, c.onError);
    for (const p of ["one", "two", Buffer.from("three")]) await t.db.pubsub.publish(ch, p);
    assert.deepEqual(await c.waitFor(3), [{ event: "one" }, { event: "two" }, { event: "three" }]);
    unsubscribe();
  });

  it("delivers publishes made at once (grouped into few statements) every one and in order, repeats included", async () => {
    const [ch, other] = [channel(), channel()];
    const [c, o] = [new Collector(), new Collector()];
    await t.db.pubsub.subscribe(ch, c.onEvent, c.onError);
    await t.db.pubsub.subscribe(other, o.onEvent, o.onError);
    const sent = Array.from({ length: 450 }, (_, i) => (i % 3 === 0 ? "same" : `p${i}`));
    await Promise.all([...sent.map((p) => t.db.pubsub.publish(ch, p)), t.db.pubsub.publish(other, "same")]);
    assert.deepEqual((await c.waitFor(sent.length)).map((e) => (e as { event: string }).event), sent);
    assert.deepEqual(await o.waitFor(1), [{ event: "same" }]);
  });

  it("delivers to every subscriber of a channel, and not to other channels", async () => {
    const ch = channel();
    const [a, b, other] = [new Collector(), new Collector(), new Collector()];
    await t.db.pubsub.subscribe(ch, a.onEvent, a.onError);
    await t.db.pubsub.subscribe(ch, b.onEvent, b.onError);
    await t.db.pubsub.subscribe(channel(), other.onEvent, other.onError);
    await t.db.pubsub.publish(ch, "x");
    assert.deepEqual([await a.waitFor(1), await b.waitFor(1)], [[{ event: "x" }], [{ event: "x" }]]);
    assert.deepEqual(other.seen, []);
  });

  it("an unsubscribed callback gets nothing while the channel's other subscribers still do", async () => {
    const ch = channel();
    const [gone, stays] = [new Collector(), new Collector()];
    const unsubscribe = await t.db.pubsub.subscribe(ch, gone.onEvent, gone.onError);
    await t.db.pubsub.subscribe(ch, stays.onEvent, stays.onError);
    unsubscribe();
    await t.db.pubsub.publish(ch, "after");
    await stays.waitFor(1);
    assert.deepEqual(gone.seen, []);
  });

  it(`accepts a ${MAX_PAYLOAD_BYTES}-byte payload and refuses one byte more`, async () => {
    const ch = channel();
    const c = new Collector();
    await t.db.pubsub.subscribe(ch, c.onEvent, c.onError);
    await t.db.pubsub.publish(ch, "x".repeat(MAX_PAYLOAD_BYTES));
    await assert.rejects(t.db.pubsub.publish(ch, "x".repeat(MAX_PAYLOAD_BYTES + 1)), PubsubPayloadError);
    const [first] = await c.waitFor(1);
    assert.equal((first as { event: string }).event.length, MAX_PAYLOAD_BYTES);
  });

  it("refuses a channel name longer than Postgres identifiers", async () => {
    await assert.rejects(t.db.pubsub.publish("c".repeat(64), "x"), PubsubPayloadError);
  });

  it("sees an event NOTIFYed by another connection, once its transaction commits", async () => {
    const ch = channel();
    const c = new Collector();
    await t.db.pubsub.subscribe(ch, c.onEvent, c.onError);
    if (t.name === "pg") {
      const other = await t.testDb.open();
      await other.pubsub.publish(ch, "from elsewhere");
    } else {
      // One PGlite backend per process: the other writer is a transaction of the same instance.
      await t.db.transaction(async (tx) => {
        await tx.query("SELECT pg_notify($1, $2)", [ch, "from elsewhere"]);
      });
    }
    assert.deepEqual(await c.waitFor(1), [{ event: "from elsewhere" }]);
  });

  it(`a subscriber that falls ${DEFAULT_SUBSCRIBER_QUEUE} events behind gets a dropped-events error, then events again`, async () => {
    const ch = channel();
    const extra = 10;
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let blocking!: () => void;
    const isBlocking = new Promise<void>((resolve) => (blocking = resolve));
    const slow = new Collector();
    let first = true;
    await t.db.pubsub.subscribe(
      ch,
      async (payload) => {
        if (first) {
          first = false;
          blocking();
          await released;
        }
        slow.onEvent(payload);
      },
      slow.onError,
    );
    // A fast subscriber on the same channel tells when every NOTIFY has reached this process.
    const fast = new Collector();
    await t.db.pubsub.subscribe(ch, fast.onEvent, fast.onError);

    await t.db.pubsub.publish(ch, "blocker");
    await isBlocking;
    const total = DEFAULT_SUBSCRIBER_QUEUE + extra;
    // All at once: grouped into few statements, in order (one at a time would wait the
    // grouping interval each).
    await Promise.all(Array.from({ length: total }, (_, i) => t.db.pubsub.publish(ch, String(i))));
    await fast.waitFor(total + 1);
    release();

    const seen = await slow.waitFor(1 + DEFAULT_SUBSCRIBER_QUEUE + 1);
    assert.deepEqual(seen.slice(0, 2), [{ event: "blocker" }, { event: "0" }]);
    assert.deepEqual(seen[DEFAULT_SUBSCRIBER_QUEUE], { event: String(DEFAULT_SUBSCRIBER_QUEUE - 1) });
    const err = (seen[DEFAULT_SUBSCRIBER_QUEUE + 1] as { error: Error }).error;
    assert.ok(err instanceof PubsubDroppedEventsError);
    assert.equal(err.count, extra);
    await t.db.pubsub.publish(ch, "later");
    const after = await slow.waitFor(DEFAULT_SUBSCRIBER_QUEUE + 3);
    assert.deepEqual(after.at(-1), { event: "later" });
  });

  if (t.name === "pg") {
    it("after the LISTEN connection is killed, subscribers get an error and delivery works again", async () => {
      const ch = channel();
      const c = new Collector();
      await t.db.pubsub.subscribe(ch, c.onEvent, c.onError);
      const { rowCount } = await t.db.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
        [LISTENER_APPLICATION_NAME],
      );
      // This database's listeners: ours, and any other handle's opened by earlier tests.
      assert.ok(rowCount >= 1);
      const [lost] = await c.waitFor(1);
      assert.ok((lost as { error: Error }).error instanceof PubsubListenerLostError);
      await t.db.pubsub.publish(ch, "after reconnect");
      assert.deepEqual((await c.waitFor(2))[1], { event: "after reconnect" });
    });
  }
});

describe("the pg listener connection", { skip: !availableEngines().includes("pg") }, () => {
  it("sends overlapping LISTEN and UNLISTEN one after another: no DeprecationWarning from pg", async () => {
    const tdb = await createTestDatabase("pg");
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      const db = await tdb.open();
      const stops = await Promise.all(Array.from({ length: 20 }, (_, i) => db.pubsub.subscribe(`overlap_${i}`, () => undefined, () => undefined)));
      for (const stop of stops) stop();
      // The UNLISTENs were sent after their LISTENs; one more round trip on the listener settles them.
      await db.pubsub.subscribe("overlap_last", () => undefined, () => undefined);
      assert.deepEqual(warnings.filter((w) => w.name === "DeprecationWarning").map((w) => w.message), []);
    } finally {
      process.off("warning", onWarning);
      await tdb.destroy();
    }
  });

  it("gives up opening a connection after connectTimeoutMs when the server never answers", async () => {
    const silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as AddressInfo;
    try {
      await assert.rejects(openDatabase({ databaseUrl: `postgres://nobody@127.0.0.1:${port}/none`, connectTimeoutMs: 200 }), /timeout/i);
    } finally {
      silent.close();
    }
  });
});
