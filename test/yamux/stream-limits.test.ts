import { test } from "node:test";
import assert from "node:assert/strict";
import { INITIAL_STREAM_WINDOW, type Stream } from "../../src/yamux/index.js";
import { destroyAll, sessionPair, streamError } from "./helpers.js";

test("a stream's setTimeout emits 'timeout' after that long without a byte; the stream stays open", async () => {
  const { client, server } = sessionPair();
  // The idle timer is unref'd like a socket's: keep the test's event loop alive meanwhile.
  const keepAlive = setInterval(() => undefined, 1_000);
  try {
    const accepted = new Promise<Stream>((resolve) => server.once("stream", resolve));
    const outbound = client.open();
    outbound.write("hello");
    const stream = await accepted;
    let bytes = 0;
    stream.on("data", (c: Buffer) => (bytes += c.length));
    const timedOut = new Promise<void>((resolve) => stream.setTimeout(100, resolve));
    outbound.write("more");
    await timedOut;
    assert.equal(bytes, 9);
    assert.equal(stream.destroyed, false, "a timeout only tells; the listener decides");
    stream.setTimeout(0);
  } finally {
    clearInterval(keepAlive);
    destroyAll(client, server);
  }
});

test("maxBufferedBytes: unread streams hold the session's budget, a SYN past it is refused, reading frees it", async () => {
  const { client, server } = sessionPair({ server: { maxBufferedBytes: 2 * INITIAL_STREAM_WINDOW } });
  try {
    const accepted: Stream[] = [];
    server.on("stream", (s: Stream) => accepted.push(s));
    const first = client.open();
    const second = client.open();
    first.write(Buffer.alloc(INITIAL_STREAM_WINDOW));
    second.write(Buffer.alloc(INITIAL_STREAM_WINDOW));
    const refused = await streamError(client.open());
    assert.equal(refused.code, "ERR_YAMUX_STREAM_REFUSED");
    assert.equal(accepted.length, 2);
    // Reading the first stream and closing it frees its part of the budget.
    const closed = new Promise<void>((resolve) => accepted[0]!.once("close", resolve));
    accepted[0]!.resume();
    accepted[0]!.once("end", () => accepted[0]!.end());
    first.resume();
    first.end();
    await closed;
    const next = new Promise<Stream>((resolve) => server.once("stream", resolve));
    client.open().write("y");
    await next;
    assert.equal(accepted.length, 3);
  } finally {
    destroyAll(client, server);
  }
});
