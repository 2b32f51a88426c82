import assert from "node:assert/strict";
import { once } from "node:events";
import { describe, it } from "node:test";
import { GoAwayCode, Session, YamuxErrorCode, type Stream } from "../../src/yamux/index.js";
import { destroyAll, duplexPair, ignoreStreamErrors, echoStreams, readAll, sessionPair, streamError } from "./helpers.js";

describe("session lifecycle", () => {
  it("transport death fails every stream on both sides at once", async () => {
    const pair = sessionPair();
    const accepted: Stream[] = [];
    pair.server.on("stream", (s: Stream) => accepted.push(s));
    const opened = Array.from({ length: 5 }, () => pair.client.open());
    await pair.client.ping();
    assert.equal(accepted.length, 5);
    const errors = [...opened, ...accepted].map(streamError);
    const started = performance.now();
    pair.clientPipe.destroy();
    const codes = (await Promise.all(errors)).map((e) => e.code);
    assert.ok(performance.now() - started < 50, "failed within milliseconds");
    assert.deepEqual(new Set(codes), new Set([YamuxErrorCode.SessionClosed]));
    assert.ok(pair.client.closed && pair.server.closed);
    assert.equal(pair.server.streamCount, 0);
  });

  it("the transport ending (EOF) fails open streams and emits 'close' once", async () => {
    const pair = sessionPair();
    ignoreStreamErrors(pair.server);
    const stream = pair.client.open();
    const failed = streamError(stream);
    let closes = 0;
    pair.client.on("close", () => closes++);
    pair.serverPipe.end();
    assert.equal((await failed).code, YamuxErrorCode.SessionClosed);
    assert.equal(closes, 1);
    destroyAll(pair.server);
  });

  it("close() sends GoAway: the peer refuses new opens, open streams finish, then the session closes", async () => {
    const pair = sessionPair();
    echoStreams(pair.server);
    const stream = pair.client.open();
    await once(pair.server, "stream");
    const closing = pair.server.close();
    assert.ok(pair.server.closed);
    await pair.server.ping().catch(() => {}); // rejects once closed; the GoAway is out by then
    await pair.client.ping();
    assert.throws(() => pair.client.open(), { code: YamuxErrorCode.RemoteGoAway });
    const echoed = readAll(stream);
    stream.end("still served");
    assert.equal((await echoed).toString(), "still served");
    await closing;
    assert.equal(pair.server.streamCount, 0);
    destroyAll(pair.client);
  });

  it("close() destroys streams still open after closeTimeoutMs with ERR_YAMUX_CLOSE_TIMEOUT", async () => {
    const pair = sessionPair({ server: { closeTimeoutMs: 30 } });
    pair.client.open().on("error", () => {});
    const [accepted] = (await once(pair.server, "stream")) as [Stream];
    const failed = streamError(accepted);
    await pair.server.close();
    assert.equal((await failed).code, YamuxErrorCode.CloseTimeout);
    destroyAll(pair.client);
  });


  it("close() ends once our side of every stream ended, without waiting for the peer's FIN", async () => {
    // A tunnel's HTTP/2 connection ends its side after GOAWAY; the agent closing its own side
    // is its business, and a busy agent's FIN can take seconds: the drain needn't wait for it.
    const pair = sessionPair({ server: { closeTimeoutMs: 60_000 } });
    const opened = pair.client.open();
    opened.on("error", () => {});
    const [accepted] = (await once(pair.server, "stream")) as [Stream];
    let serverError: Error | undefined;
    accepted.on("error", (err: Error) => (serverError = err));
    const closing = pair.server.close();
    let answer = "";
    opened.on("data", (chunk: Buffer) => (answer += chunk));
    accepted.end("last words");
    await closing;
    await new Promise((resolve) => pair.client.once("close", resolve)); // the transport is gone: the client ends too
    assert.equal(serverError, undefined, "a stream that had finished is not failed");
    assert.equal(answer, "last words", "what it wrote before its FIN arrived");
    assert.equal(pair.server.streamCount, 0);
  });

  it("close() resolves as soon as the transport dies, not after closeTimeoutMs", async () => {
    // At shutdown an agent can go away while its tunnel drains: waiting out the grace for a
    // session that is already over kept a server from exiting for the whole grace.
    const pair = sessionPair({ server: { closeTimeoutMs: 60_000 } });
    pair.client.open().on("error", () => {});
    const [accepted] = (await once(pair.server, "stream")) as [Stream];
    const failed = streamError(accepted);
    const closing = pair.server.close();
    pair.clientPipe.destroy();
    const outcome = await Promise.race([closing.then(() => "closed"), once(pair.server, "close").then(() => new Promise((r) => setImmediate(r, "still closing")))]);
    assert.equal(outcome, "closed");
    assert.equal((await failed).code, YamuxErrorCode.SessionClosed);
  });
  it("a SYN after our GoAway is refused with RST", async () => {
    const pair = sessionPair({ server: { closeTimeoutMs: 1000 } });
    ignoreStreamErrors(pair.server);
    const first = pair.client.open();
    await once(pair.server, "stream");
    void pair.server.close();
    // The client has not seen the GoAway yet when it opens this one.
    const late = pair.client.open();
    assert.equal((await streamError(late)).code, YamuxErrorCode.StreamRefused);
    assert.equal(pair.server.counters.streamsRefused, 1);
    first.destroy();
    destroyAll(pair.client);
  });

  it("open() and ping() after close fail with ERR_YAMUX_SESSION_CLOSED", async () => {
    const pair = sessionPair();
    await pair.client.close();
    assert.throws(() => pair.client.open(), { code: YamuxErrorCode.SessionClosed });
    await assert.rejects(pair.client.ping(), { code: YamuxErrorCode.SessionClosed });
    destroyAll(pair.server);
  });

  it("close(ProtocolError) makes the peer fail with ERR_YAMUX_REMOTE_ERROR", async () => {
    const pair = sessionPair();
    const failed = once(pair.server, "error");
    await pair.client.close(GoAwayCode.ProtocolError);
    const [error] = (await failed) as [Error & { code: string }];
    assert.equal(error.code, YamuxErrorCode.RemoteError);
  });

  it("ping() measures a round trip and the peer counts the ping", async () => {
    const pair = sessionPair();
    const rtt = await pair.client.ping();
    assert.ok(rtt >= 0 && rtt < 1000);
    assert.equal(pair.server.counters.pingsReceived, 1);
    assert.equal(pair.client.counters.pingsSent, 1);
    destroyAll(pair.client, pair.server);
  });

  it("keepalive keeps pinging a live peer", async () => {
    const pair = sessionPair({ server: { keepaliveIntervalMs: 5, keepaliveTimeoutMs: 1000 } });
    while (pair.client.counters.pingsReceived < 3) await once(pair.clientPipe, "data");
    assert.equal(pair.server.closed, false);
    destroyAll(pair.client, pair.server);
  });

  it("keepalive closes the session when a ping is not answered in time", async () => {
    const [ours, silent] = duplexPair();
    silent.resume(); // reads, never answers
    const session = new Session(ours, { role: "server", keepaliveIntervalMs: 5, keepaliveTimeoutMs: 20 });
    const [error] = (await once(session, "error")) as [Error & { code: string }];
    assert.equal(error.code, YamuxErrorCode.KeepaliveTimeout);
    assert.ok(session.closed);
  });
});
