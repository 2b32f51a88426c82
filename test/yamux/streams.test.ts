import http from "node:http";
import assert from "node:assert/strict";
import { once } from "node:events";
import { describe, it } from "node:test";
import { YamuxErrorCode, type Stream } from "../../src/yamux/index.js";
import { closed, destroyAll, readAll, sessionPair, streamError } from "./helpers.js";

async function acceptedStream(pair: ReturnType<typeof sessionPair>): Promise<[Stream, Stream]> {
  const stream = pair.client.open();
  const [accepted] = (await once(pair.server, "stream")) as [Stream];
  return [stream, accepted];
}

function closeCount(stream: Stream): () => number {
  let count = 0;
  stream.on("close", () => count++);
  return () => count;
}

describe("streams", () => {
  it("client half-close: the server reads to the end and can still answer, then both leave the tables", async () => {
    const pair = sessionPair();
    const [stream, accepted] = await acceptedStream(pair);
    const closes = [closeCount(stream), closeCount(accepted)];
    stream.end("request");
    assert.equal((await readAll(accepted)).toString(), "request");
    assert.equal(pair.server.streamCount, 1, "still open for the answer");
    accepted.end("answer");
    assert.equal((await readAll(stream)).toString(), "answer");
    await Promise.all([closed(stream), closed(accepted)]);
    await pair.client.ping();
    assert.deepEqual(closes.map((c) => c()), [1, 1]);
    assert.equal(pair.client.streamCount, 0);
    assert.equal(pair.server.streamCount, 0);
    destroyAll(pair.client, pair.server);
  });

  it("server half-close: the client reads to the end and can still send, then both leave the tables", async () => {
    const pair = sessionPair();
    const [stream, accepted] = await acceptedStream(pair);
    accepted.end("pushed");
    assert.equal((await readAll(stream)).toString(), "pushed");
    stream.end("late");
    assert.equal((await readAll(accepted)).toString(), "late");
    await Promise.all([closed(stream), closed(accepted)]);
    await pair.client.ping();
    assert.equal(pair.client.streamCount, 0);
    assert.equal(pair.server.streamCount, 0);
    destroyAll(pair.client, pair.server);
  });

  it("client destroy() resets the stream: the server's copy fails with ERR_YAMUX_STREAM_RESET", async () => {
    const pair = sessionPair();
    const [stream, accepted] = await acceptedStream(pair);
    const closes = closeCount(accepted);
    stream.destroy();
    assert.equal((await streamError(accepted)).code, YamuxErrorCode.StreamReset);
    await closed(accepted);
    await pair.client.ping();
    assert.equal(closes(), 1);
    assert.equal(pair.server.streamCount, 0);
    assert.equal(pair.client.streamCount, 0);
    destroyAll(pair.client, pair.server);
  });

  it("server destroy() resets the stream: the client's copy fails with ERR_YAMUX_STREAM_RESET", async () => {
    const pair = sessionPair();
    const [stream, accepted] = await acceptedStream(pair);
    accepted.destroy();
    assert.equal((await streamError(stream)).code, YamuxErrorCode.StreamReset);
    await pair.client.ping();
    assert.equal(pair.server.streamCount, 0);
    assert.equal(pair.client.streamCount, 0);
    destroyAll(pair.client, pair.server);
  });

  it("10,000 concurrent opens against a limit of 1,024: 1,024 accepted, the rest refused explicitly", async () => {
    const pair = sessionPair({ client: { maxStreams: 20_000 }, server: { maxStreams: 1024 } });
    let accepted = 0;
    pair.server.on("stream", () => accepted++);
    const outcomes = Array.from({ length: 10_000 }, () => {
      const stream = pair.client.open();
      return streamError(stream).then((e) => e.code);
    });
    await pair.client.ping();
    assert.equal(accepted, 1024);
    assert.equal(pair.server.streamCount, 1024);
    assert.equal(pair.server.counters.streamsRefused, 10_000 - 1024);
    destroyAll(pair.server);
    const codes = await Promise.all(outcomes);
    assert.equal(codes.filter((c) => c === YamuxErrorCode.StreamRefused).length, 10_000 - 1024);
    destroyAll(pair.client);
  });

  it("open() beyond maxStreams throws ERR_YAMUX_STREAMS_EXHAUSTED", () => {
    const pair = sessionPair({ client: { maxStreams: 2 } });
    pair.client.open();
    pair.client.open();
    assert.throws(() => pair.client.open(), { code: YamuxErrorCode.StreamsExhausted });
    destroyAll(pair.client, pair.server);
  });

  it("a keep-alive http.Agent parks a client stream between requests and reuses it (setKeepAlive, unref, ref and setNoDelay on it)", async () => {
    const pair = sessionPair();
    const seen: { remoteAddress: string | undefined }[] = [];
    let connections = 0;
    const server = http.createServer((req, res) => {
      seen.push({ remoteAddress: req.socket.remoteAddress });
      res.end(req.url);
    });
    server.on("connection", () => connections++);
    pair.server.on("stream", (stream: Stream) => server.emit("connection", stream));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    // The agent asks for a socket through createConnection; a yamux stream stands in for TCP.
    (agent as unknown as { createConnection: () => Stream }).createConnection = () => {
      const stream = pair.client.open();
      stream.setNoDelay(true);
      return stream;
    };
    const get = (path: string) =>
      new Promise<string>((resolve, reject) => {
        http
          .get({ host: "yamux", path, agent }, (res) => {
            let text = "";
            res.on("data", (c: Buffer) => (text += c.toString()));
            res.on("end", () => resolve(text));
          })
          .on("error", reject);
      });
    try {
      assert.equal(await get("/first"), "/first");
      assert.equal(await get("/second"), "/second");
      assert.equal(connections, 1, "the second request reused the parked stream");
      assert.deepEqual(seen, [{ remoteAddress: undefined }, { remoteAddress: undefined }], "streams have no addresses of their own");
    } finally {
      agent.destroy();
      destroyAll(pair.client, pair.server);
    }
  });
});
