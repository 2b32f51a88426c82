/** The server connection's RPC lifecycle, driven byte by byte by a raw peer. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DrpcServerConnection, type DrpcCall, type DrpcHandler } from "../../src/drpc/index.js";
import { hex, rawPeer, wire } from "./support.js";

const METHOD = "/test.v1.Echo/Say";
const invoke = (stream: number, messageId = 1) => wire(`03 0${stream} 0${messageId} 11`, Buffer.from(METHOD));
const unaryRequest = (stream: number, text: string) =>
  wire(invoke(stream), `05 0${stream} 02 0${text.length}`, Buffer.from(text), `0d 0${stream} 03 00`);
const unaryReply = (stream: number, text: string) => wire(`05 0${stream} 01 0${text.length}`, Buffer.from(text), `0d 0${stream} 02 00`);

function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

const echo: DrpcHandler = async (call) => {
  await call.send((await call.receive())!);
};

describe("DRPC server connection", () => {
  it("a newer Invoke cancels the current RPC, whose handler returns before the newer one starts", async () => {
    const firstCanceled = deferred<unknown>();
    const releaseFirst = deferred();
    const started: string[] = [];
    const peer = rawPeer();
    new DrpcServerConnection(peer.local, async (call) => {
      started.push(`stream ${call.id}`);
      if (call.id === 2) return echo(call);
      await new Promise((resolve) => call.signal.addEventListener("abort", resolve));
      firstCanceled.resolve(call.signal.reason);
      await releaseFirst.promise;
      assert.throws(() => call.send(Buffer.from("late")), /a newer RPC started/);
    });
    peer.raw.write(wire(invoke(1), "05 01 02 01", Buffer.from("1")));
    peer.raw.write(unaryRequest(2, "2"));
    assert.equal(((await firstCanceled.promise) as Error).message, "a newer RPC started on the transport");
    assert.deepEqual(started, ["stream 1"], "stream 2 waits for stream 1's handler");
    releaseFirst.resolve();
    assert.deepEqual(await peer.receivedBytes(unaryReply(2, "2").length), unaryReply(2, "2"));
    assert.deepEqual(started, ["stream 1", "stream 2"]);
  });

  it("InvokeMetadata for a newer stream also cancels the current RPC", async () => {
    const canceled = deferred<unknown>();
    const peer = rawPeer();
    new DrpcServerConnection(peer.local, async (call) => {
      if (call.id === 2) return echo(call);
      await new Promise((resolve) => call.signal.addEventListener("abort", resolve));
      canceled.resolve(call.signal.reason);
    });
    peer.raw.write(invoke(1));
    peer.raw.write(wire("0f 02 01 08 0a 06 0a 01 6b 12 01 76", "03 02 02 11", Buffer.from(METHOD), "05 02 03 01 32", "0d 02 04 00"));
    assert.equal(((await canceled.promise) as Error).message, "a newer RPC started on the transport");
    assert.deepEqual(await peer.receivedBytes(unaryReply(2, "2").length), unaryReply(2, "2"));
  });

  it("a Cancel packet cancels the handler without an answer; the transport serves the next RPC", async () => {
    const canceled = deferred<unknown>();
    const peer = rawPeer();
    new DrpcServerConnection(peer.local, async (call) => {
      if (call.id === 2) return echo(call);
      await call.receive().catch((err: Error) => canceled.resolve(err.message));
    });
    peer.raw.write(wire(invoke(1), "89 01 02 00"));
    assert.equal(await canceled.promise, "remote canceled the stream");
    peer.raw.write(unaryRequest(2, "2"));
    assert.deepEqual(await peer.receivedBytes(unaryReply(2, "2").length), unaryReply(2, "2"), "nothing was sent for stream 1");
  });

  it("the client's Close mid-stream ends the handler's sends", async () => {
    const sendFailed = deferred<string>();
    const peer = rawPeer();
    new DrpcServerConnection(peer.local, async (call: DrpcCall) => {
      await call.receive();
      await call.send(Buffer.from("a"));
      await new Promise((resolve) => call.signal.addEventListener("abort", resolve));
      try {
        await call.send(Buffer.from("b"));
      } catch (err) {
        sendFailed.resolve((err as Error).message);
      }
    });
    peer.raw.write(wire(invoke(1), "05 01 02 00", "0d 01 03 00"));
    await peer.receivedBytes(5);
    peer.raw.write(hex("0b 01 04 00"));
    assert.equal(await sendFailed.promise, "remote closed the stream");
    assert.deepEqual(peer.received(), hex("05 01 01 01 61"), "no CloseSend after the client's Close");
  });

  it("a handler that throws answers Error with code 0 and its message, as drpc does for an error without a code", async () => {
    const peer = rawPeer();
    new DrpcServerConnection(peer.local, async () => {
      throw new Error("boom");
    });
    peer.raw.write(unaryRequest(1, "x"));
    const expected = wire("07 01 01 0c 00 00 00 00 00 00 00 00", Buffer.from("boom"));
    assert.deepEqual(await peer.receivedBytes(expected.length), expected);
  });

  it("the client's FIN with no RPC active ends the server side too", async () => {
    const peer = rawPeer();
    new DrpcServerConnection(peer.local, echo);
    peer.raw.write(unaryRequest(1, "x"));
    await peer.receivedBytes(unaryReply(1, "x").length);
    peer.raw.end();
    await peer.closed;
  });
});
