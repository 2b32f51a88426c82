import assert from "node:assert/strict";
import { once } from "node:events";
import { describe, it } from "node:test";
import { GoAwayCode, INITIAL_STREAM_WINDOW, YamuxErrorCode, type Stream } from "../../src/yamux/index.js";
import { destroyAll, duplexPair, echoStreams, pattern, readAll, sessionPair, streamError } from "./helpers.js";
import { Session } from "../../src/yamux/index.js";

const MiB = 1024 * 1024;

async function echoRoundTrip(client: Session, data: Buffer): Promise<Buffer> {
  const stream = client.open();
  const received = readAll(stream);
  stream.end(data);
  return received;
}

describe("data transfer", () => {
  for (const chunkSize of [1, 7]) {
    it(`1 MB crosses both ways intact over a pipe re-chunked into ${chunkSize}-byte pieces`, async () => {
      const { client, server } = sessionPair({ chunkSize });
      echoStreams(server);
      const data = pattern(MiB, chunkSize);
      const echoed = await echoRoundTrip(client, data);
      assert.ok(echoed.equals(data));
      client.destroy();
    });
  }

  it("10,000 sequential streams open and close and leave both stream tables empty", async () => {
    const { client, server } = sessionPair();
    echoStreams(server);
    const closes: Promise<unknown>[] = [];
    for (let i = 0; i < 10_000; i++) {
      const stream = client.open();
      closes.push(once(stream, "close"));
      const echoed = await readAll(stream.end(Buffer.from([i & 0xff])) as Stream);
      assert.equal(echoed[0], i & 0xff);
    }
    await Promise.all(closes);
    await client.ping();
    assert.equal(client.streamCount, 0);
    assert.equal(server.streamCount, 0);
    assert.equal(server.counters.streamsAccepted, 10_000);
    destroyAll(client, server);
  });

  it("writes of one event-loop turn reach the transport as one write", async () => {
    const { client, server, clientPipe } = sessionPair();
    const accepted: Stream[] = [];
    server.on("stream", (s: Stream) => accepted.push(s));
    await client.ping();
    const before = clientPipe.stats.writes;
    for (let i = 0; i < 50; i++) client.open().write("hello");
    await once(server, "stream");
    await client.ping();
    // SYNs and Data of 50 streams in one write, then the ping in the next.
    assert.equal(clientPipe.stats.writes - before, 2);
    assert.equal(accepted.length, 50);
    destroyAll(client, server);
  });

  it("a session with two or more frames in a turn waits one turn more and sends both turns' frames in one write; a lone frame goes at once", async () => {
    const { client, server, clientPipe } = sessionPair();
    server.on("stream", (s: Stream) => s.resume());
    const [a, b] = [client.open(), client.open()];
    await client.ping();
    const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

    let before = clientPipe.stats.writes;
    a.write("one");
    b.write("two");
    await nextTurn();
    a.write("three"); // queued in the turn the first two wait through, as is the ping
    await client.ping();
    assert.equal(clientPipe.stats.writes - before, 1, "the three Data frames and the ping in one write");

    before = clientPipe.stats.writes;
    a.write("alone");
    await nextTurn();
    await nextTurn();
    assert.equal(clientPipe.stats.writes - before, 1, "a lone frame is written in the turn after it was queued");
    destroyAll(client, server);
  });
});

describe("flow control", () => {
  it("a paused reader stops the sender at the 256 KiB window, and a WindowUpdate resumes it", async () => {
    const { client, server } = sessionPair();
    const data = pattern(MiB);
    const stream = client.open();
    stream.write(data);
    const [accepted] = (await once(server, "stream")) as [Stream];
    accepted.pause();
    await client.ping(); // every frame the client could send has arrived
    assert.equal(server.counters.bytesIn, INITIAL_STREAM_WINDOW);
    assert.equal(accepted.readableLength, INITIAL_STREAM_WINDOW);
    assert.ok(stream.writableLength > 0, "the sender still holds the rest");
    stream.end();
    const received = await readAll(accepted);
    assert.ok(received.equals(data));
    destroyAll(client, server);
  });

  it("the window grows while the reader keeps up, up to maxWindow and no further", async () => {
    const maxWindow = MiB;
    const { client, server } = sessionPair({ server: { maxWindow } });
    const stream = client.open();
    stream.write(pattern(8 * MiB));
    const [accepted] = (await once(server, "stream")) as [Stream];
    let received = 0;
    await new Promise<void>((resolve) => {
      accepted.on("data", (chunk: Buffer) => {
        received += chunk.length;
        if (received < 8 * MiB) return;
        accepted.pause();
        resolve();
      });
    });
    stream.write(pattern(8 * MiB));
    await client.ping();
    assert.ok(accepted.readableLength > INITIAL_STREAM_WINDOW, `window grew (${accepted.readableLength} buffered)`);
    assert.ok(accepted.readableLength <= maxWindow, `window bounded (${accepted.readableLength} buffered)`);
    destroyAll(client, server);
  });

  it("the window never shrinks below the spec's 256 KiB even if configured smaller", async () => {
    const { client, server } = sessionPair({ server: { initialWindow: 1000, maxWindow: 1000 } });
    const stream = client.open();
    stream.write(pattern(MiB));
    const [accepted] = (await once(server, "stream")) as [Stream];
    accepted.pause();
    await client.ping();
    assert.equal(accepted.readableLength, INITIAL_STREAM_WINDOW);
    destroyAll(client, server);
  });
});
