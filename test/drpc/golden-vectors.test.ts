/**
 * The bytes storj/drpc v0.0.34's client and server produce (Coder's pinned version), checked in
 * both directions: our client must write what drpc's client writes and read what drpc's server
 * writes; our server must read the former and write the latter.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DrpcClientConnection, DrpcError, DrpcErrorCode, DrpcServerConnection, type DrpcHandler } from "../../src/drpc/index.js";
import { hex, nextTurn, rawPeer, wire } from "./support.js";

const GET_MANIFEST = "/coder.agent.v2.Agent/GetManifest";
const UPDATE_LIFECYCLE = "/coder.agent.v2.Agent/UpdateLifecycle";
const STREAM_DERP_MAPS = "/coder.tailnet.v2.Tailnet/StreamDERPMaps";
const COORDINATE = "/coder.tailnet.v2.Tailnet/Coordinate";
const MANIFEST_DEV = hex("7a 03 64 65 76"); // Manifest{agent_name: "dev"}

const unaryRequest = wire("03 01 01 21", Buffer.from(GET_MANIFEST), "05 01 02 00", "0d 01 03 00");
const unaryReply = wire("05 01 01 05", MANIFEST_DEV, "0d 01 02 00");
const racyClose = hex("0b 01 04 00");
const errorRequest = wire("03 01 01 25", Buffer.from(UPDATE_LIFECYCLE), "05 01 02 02 0a 00", "0d 01 03 00");
const errorReply = wire("07 01 01 15 00 00 00 00 00 00 00 0c", Buffer.from("Unimplemented"));
const metadataRequest = wire("0f 01 01 08 0a 06 0a 01 6b 12 01 76", "03 01 02 21", Buffer.from(GET_MANIFEST), "05 01 03 00", "0d 01 04 00");
const serverStreamRequest = wire("03 01 01 28", Buffer.from(STREAM_DERP_MAPS), "05 01 02 00", "0d 01 03 00");
const derpMapMessages = wire("05 01 01 02 0a 00", "05 01 02 04 0a 02 08 01");
const bidiHello = wire("03 01 01 24", Buffer.from(COORDINATE), "05 01 02 05", Buffer.from("hello"));
const bidiAck = wire("05 01 01 09", Buffer.from("ack:hello"));
const bidiBye = wire("05 01 03 03", Buffer.from("bye"));
const closeFirstReply = hex("0b 01 02 00");

/** A 200,000-byte request: three full 64 KiB frames (done=0), then 3,392 bytes, then CloseSend. */
function largeRequestFrames(payload: Buffer): Buffer {
  const frame = (i: number) => wire("04 01 02 80 80 04", payload.subarray(i * 65_536, (i + 1) * 65_536));
  return wire(frame(0), frame(1), frame(2), "05 01 02 c0 1a", payload.subarray(3 * 65_536), "0d 01 03 00");
}

function serve(handler: DrpcHandler, chunkSize?: number) {
  const peer = rawPeer({ chunkSize });
  new DrpcServerConnection(peer.local, handler);
  return peer;
}

function client(options: { closeAfterUnary?: boolean } = {}) {
  const peer = rawPeer();
  return { peer, client: new DrpcClientConnection(peer.local, options) };
}

describe("DRPC golden vectors: client writes and reads drpc's bytes", () => {
  it("unary GetManifest: Invoke, Message and CloseSend in one write; the reply resolves the call", async () => {
    const { peer, client: c } = client();
    const reply = c.unary(GET_MANIFEST, new Uint8Array(0));
    assert.deepEqual(await peer.receivedBytes(unaryRequest.length), unaryRequest);
    assert.equal(peer.local.stats.writes, 1);
    peer.raw.write(unaryReply);
    assert.deepEqual(Buffer.from(await reply), MANIFEST_DEV);
    await nextTurn();
    assert.deepEqual(peer.received(), unaryRequest, "no Close: the server's CloseSend already ended the RPC");
  });

  it("unary GetManifest: Close(1,4) follows a reply that came without CloseSend (the race)", async () => {
    const { peer, client: c } = client();
    const reply = c.unary(GET_MANIFEST, new Uint8Array(0));
    await peer.receivedBytes(unaryRequest.length);
    peer.raw.write(unaryReply.subarray(0, 9));
    assert.deepEqual(Buffer.from(await reply), MANIFEST_DEV);
    assert.deepEqual(await peer.receivedBytes(unaryRequest.length + 4), wire(unaryRequest, racyClose));
  });

  it("unary error: code 12 and the message arrive as a DrpcError", async () => {
    const { peer, client: c } = client();
    const reply = c.unary(UPDATE_LIFECYCLE, hex("0a 00"));
    assert.deepEqual(await peer.receivedBytes(errorRequest.length), errorRequest);
    peer.raw.write(errorReply);
    await assert.rejects(reply, (err: DrpcError) => {
      assert.equal(err.code, DrpcErrorCode.Remote);
      assert.equal(err.wireCode, 12);
      assert.equal(err.message, "Unimplemented");
      return true;
    });
  });

  it("metadata {k: v}: InvokeMetadata(1,1) before Invoke(1,2)", async () => {
    const { peer, client: c } = client();
    void c.unary(GET_MANIFEST, new Uint8Array(0), { metadata: new Map([["k", "v"]]) });
    assert.deepEqual(await peer.receivedBytes(metadataRequest.length), metadataRequest);
  });

  for (const [end, bytes] of [["Close", hex("0b 01 03 00")], ["CloseSend", hex("0d 01 03 00")]] as const) {
    it(`server stream StreamDERPMaps: two messages, then the stream ends at the server's ${end}`, async () => {
      const { peer, client: c } = client();
      const call = c.open(STREAM_DERP_MAPS);
      void call.send(new Uint8Array(0));
      call.closeSend();
      assert.deepEqual(await peer.receivedBytes(serverStreamRequest.length), serverStreamRequest);
      peer.raw.write(wire(derpMapMessages, bytes));
      const got: Buffer[] = [];
      for await (const message of call.messages()) got.push(Buffer.from(message));
      assert.deepEqual(got, [hex("0a 00"), hex("0a 02 08 01")]);
      assert.equal(call.terminated, true);
    });
  }

  it("bidi Coordinate: the Invoke waits for the first send; the server's Close ends the receive side", async () => {
    const { peer, client: c } = client();
    const call = c.open(COORDINATE);
    await nextTurn();
    assert.equal(peer.local.stats.writes, 0, "nothing is flushed before the first send");
    void call.send(Buffer.from("hello"));
    assert.deepEqual(await peer.receivedBytes(bidiHello.length), bidiHello);
    assert.equal(peer.local.stats.writes, 1);
    peer.raw.write(bidiAck);
    assert.equal(Buffer.from((await call.receive())!).toString(), "ack:hello");
    void call.send(Buffer.from("bye"));
    assert.deepEqual(await peer.receivedBytes(bidiHello.length + bidiBye.length), wire(bidiHello, bidiBye));
    peer.raw.write(closeFirstReply);
    assert.equal(await call.receive(), undefined);
    assert.equal(call.terminated, true);
  });

  it("a bidi's buffered Invoke also leaves with the first receive", async () => {
    const { peer, client: c } = client();
    const call = c.open(COORDINATE);
    const first = call.receive();
    const invoke = wire("03 01 01 24", Buffer.from(COORDINATE));
    assert.deepEqual(await peer.receivedBytes(invoke.length), invoke);
    peer.raw.write(bidiAck);
    assert.equal(Buffer.from((await first)!).toString(), "ack:hello");
  });

  it("a one-RPC connection (a Coder agent's yamux stream) writes its last Close before the FIN", async () => {
    const peer = rawPeer();
    const call = new DrpcClientConnection(peer.local, { endAfterRpc: true }).open(COORDINATE);
    void call.send(Buffer.from("hello"));
    call.close();
    await peer.closed;
    assert.deepEqual(peer.received(), wire(bidiHello, "0b 01 03 00"));
  });

  it("a 200,000-byte request is split into 64 KiB frames", async () => {
    const { peer, client: c } = client();
    const payload = Buffer.alloc(200_000, 7);
    void c.unary(GET_MANIFEST, payload);
    const expected = wire("03 01 01 21", Buffer.from(GET_MANIFEST), largeRequestFrames(payload));
    assert.deepEqual(await peer.receivedBytes(expected.length), expected);
  });
});

describe("DRPC golden vectors: server reads and writes drpc's bytes", () => {
  it("unary GetManifest: Message(1,1) and CloseSend(1,2); the racy Close(1,4) after it is ignored", async () => {
    const seen: { method: string; request: Buffer }[] = [];
    const peer = serve(async (call) => {
      seen.push({ method: call.method, request: Buffer.from((await call.receive())!) });
      await call.send(MANIFEST_DEV);
    });
    peer.raw.write(unaryRequest);
    assert.deepEqual(await peer.receivedBytes(unaryReply.length), unaryReply);
    peer.raw.write(racyClose);
    assert.deepEqual(seen, [{ method: GET_MANIFEST, request: Buffer.alloc(0) }]);
    // The transport is still good: the next RPC on it (stream 2) is answered.
    peer.raw.write(wire("03 02 01 21", Buffer.from(GET_MANIFEST), "05 02 02 00", "0d 02 03 00"));
    const second = wire("05 02 01 05", MANIFEST_DEV, "0d 02 02 00");
    assert.deepEqual(await peer.receivedBytes(unaryReply.length + second.length), wire(unaryReply, second));
  });

  it("unary error: Error(1,1) with the 8-byte code 12 and the message", async () => {
    const peer = serve(async (call) => {
      assert.deepEqual(Buffer.from((await call.receive())!), hex("0a 00"));
      call.error(12, "Unimplemented");
    });
    peer.raw.write(errorRequest);
    assert.deepEqual(await peer.receivedBytes(errorReply.length), errorReply);
  });

  it("metadata {k: v} reaches the handler of the Invoke with the same stream id", async () => {
    let metadata: ReadonlyMap<string, string> | undefined;
    const peer = serve(async (call) => {
      metadata = call.metadata;
      await call.send(MANIFEST_DEV);
    });
    peer.raw.write(metadataRequest);
    assert.deepEqual(await peer.receivedBytes(unaryReply.length), unaryReply);
    assert.deepEqual(metadata, new Map([["k", "v"]]));
  });

  it("metadata for another stream id does not apply to the Invoke", async () => {
    let metadata: ReadonlyMap<string, string> | undefined = new Map();
    const peer = serve(async (call) => {
      metadata = call.metadata;
      await call.send(MANIFEST_DEV);
    });
    peer.raw.write(wire("0f 01 01 08 0a 06 0a 01 6b 12 01 76", "03 02 01 21", Buffer.from(GET_MANIFEST), "05 02 02 00", "0d 02 03 00"));
    await peer.receivedBytes(unaryReply.length);
    assert.equal(metadata, undefined);
  });

  for (const [end, bytes] of [["Close", hex("0b 01 03 00")], ["CloseSend", hex("0d 01 03 00")]] as const) {
    it(`server stream StreamDERPMaps: two Messages, then ${end}(1,3)`, async () => {
      const peer = serve(async (call) => {
        await call.receive();
        await call.send(hex("0a 00"));
        await call.send(hex("0a 02 08 01"));
        if (end === "Close") call.close(); // else returning sends CloseSend
      });
      peer.raw.write(serverStreamRequest.subarray(0, serverStreamRequest.length - 4));
      peer.raw.write(serverStreamRequest.subarray(serverStreamRequest.length - 4));
      const expected = wire(derpMapMessages, bytes);
      assert.deepEqual(await peer.receivedBytes(expected.length), expected);
    });
  }

  it("bidi Coordinate: answers hello, then hangs up with Close(1,2) after bye", async () => {
    const peer = serve(async (call) => {
      const hello = Buffer.from((await call.receive())!).toString();
      await call.send(Buffer.from(`ack:${hello}`));
      assert.equal(Buffer.from((await call.receive())!).toString(), "bye");
      call.close();
    });
    peer.raw.write(bidiHello);
    assert.deepEqual(await peer.receivedBytes(bidiAck.length), bidiAck);
    peer.raw.write(bidiBye);
    assert.deepEqual(await peer.receivedBytes(bidiAck.length + 4), wire(bidiAck, closeFirstReply));
  });

  it("a 200,000-byte request in 64 KiB frames is reassembled into one message", async () => {
    const payload = Buffer.alloc(200_000);
    for (let i = 0; i < payload.length; i++) payload[i] = i % 251;
    let received: Buffer | undefined;
    const peer = serve(async (call) => {
      received = Buffer.from((await call.receive())!);
      await call.send(MANIFEST_DEV);
    });
    peer.raw.write(wire("03 01 01 21", Buffer.from(GET_MANIFEST), largeRequestFrames(payload)));
    await peer.receivedBytes(unaryReply.length);
    assert.deepEqual(received, payload);
  });

  for (const chunkSize of [1, 2, 3, 5]) {
    it(`every request vector read in ${chunkSize}-byte chunks gets its reply`, async () => {
      const answerManifest: DrpcHandler = async (call) => {
        await call.receive();
        await call.send(MANIFEST_DEV);
      };
      const answerUnimplemented: DrpcHandler = async (call) => {
        await call.receive();
        call.error(12, "Unimplemented");
      };
      const cases: [Buffer, DrpcHandler, Buffer][] = [
        [unaryRequest, answerManifest, unaryReply],
        [errorRequest, answerUnimplemented, errorReply],
        [metadataRequest, answerManifest, unaryReply],
      ];
      for (const [request, handler, reply] of cases) {
        const peer = serve(handler, chunkSize);
        peer.raw.write(request);
        assert.deepEqual(await peer.receivedBytes(reply.length), reply);
      }
    });
  }
});
