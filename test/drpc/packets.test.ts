/** Packet assembly and its limits, as a peer that breaks them sees it: through real connections. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DrpcClientConnection, DrpcServerConnection, MAX_PACKET_BYTES, type DrpcHandler } from "../../src/drpc/index.js";
import { decodeUvarint, encodeUvarint, uvarintSize } from "../../src/drpc/varint.js";
import { hex, protocolErrors, rawPeer, wire } from "./support.js";

const METHOD = "/test.v1.Echo/Say";
const invoke = (stream = 1) => wire(`03 0${stream} 01 11`, Buffer.from(METHOD));
const echoFirst: DrpcHandler = async (call) => {
  const message = await call.receive();
  if (message !== undefined) await call.send(message);
};

/** A frame header as bytes, with the control byte given whole. */
function header(control: number, streamId: number, messageId: number, length: number): Buffer {
  const out = Buffer.alloc(31);
  out[0] = control;
  let at = encodeUvarint(out, 1, streamId);
  at = encodeUvarint(out, at, messageId);
  at = encodeUvarint(out, at, length);
  return out.subarray(0, at);
}

/** A Message packet split into 64 KiB frames. */
function messageFrames(streamId: number, messageId: number, data: Buffer): Buffer {
  const frames: Buffer[] = [];
  for (let at = 0; at < data.length; at += 65_536) {
    const piece = data.subarray(at, at + 65_536);
    const last = at + piece.length === data.length;
    frames.push(header(last ? 0x05 : 0x04, streamId, messageId, piece.length), piece);
  }
  return Buffer.concat(frames);
}

function serve(handler: DrpcHandler = echoFirst) {
  const peer = rawPeer();
  const errors = protocolErrors();
  new DrpcServerConnection(peer.local, handler, { onProtocolError: errors.onProtocolError });
  return { peer, error: errors.first };
}

describe("DRPC varints", () => {
  it("encode and decode drpc's varints byte for byte (1, 127, 128, 3392, 65536, ...)", () => {
    const table: [number, string][] = [
      [0, "00"],
      [1, "01"],
      [127, "7f"],
      [128, "80 01"],
      [3392, "c0 1a"],
      [65536, "80 80 04"],
      [Number.MAX_SAFE_INTEGER, "ff ff ff ff ff ff ff 0f"],
    ];
    for (const [value, encoded] of table) {
      const buf = Buffer.alloc(10);
      const end = encodeUvarint(buf, 0, value);
      assert.equal(buf.subarray(0, end).toString("hex"), encoded.replace(/ /g, ""), `encode ${value}`);
      assert.equal(uvarintSize(value), end);
      const out = { value: -1 };
      assert.equal(decodeUvarint(hex(encoded), 0, end, out), end);
      assert.equal(out.value, value, `decode ${encoded}`);
    }
  });

  it("a 10-byte varint decodes; an 11th byte, a 10th byte over 1, or a value past 2^53 is a protocol error", () => {
    const out = { value: -1 };
    assert.equal(decodeUvarint(hex("81 80 80 80 80 80 80 80 80 00"), 0, 10, out), 10);
    assert.equal(out.value, 1);
    assert.throws(() => decodeUvarint(hex("80 80 80 80 80 80 80 80 80 80 01"), 0, 11, out), /overflows 64 bits/);
    assert.throws(() => decodeUvarint(hex("80 80 80 80 80 80 80 80 80 02"), 0, 10, out), /overflows 64 bits/);
    assert.throws(() => decodeUvarint(hex("80 80 80 80 80 80 80 80 01"), 0, 9, out), /exceeds 2\^53/);
  });

  it("an incomplete varint asks for more input", () => {
    assert.equal(decodeUvarint(hex("80 80"), 0, 2, { value: 0 }), -1);
  });

  it("a frame header with an overlong varint closes the transport", async () => {
    const { peer, error } = serve();
    peer.raw.write(hex("03 80 80 80 80 80 80 80 80 80 80 01"));
    assert.match((await error).message, /overflows 64 bits/);
    await peer.closed;
  });
});

describe("DRPC packets", () => {
  it("a packet of exactly 4 MiB is accepted", async () => {
    const { peer } = serve(async (call) => {
      const message = await call.receive();
      await call.send(Buffer.from(String(message!.length)));
    });
    peer.raw.write(wire(invoke(), messageFrames(1, 2, Buffer.alloc(MAX_PACKET_BYTES, 1))));
    const reply = wire("05 01 01 07", Buffer.from(String(MAX_PACKET_BYTES)));
    assert.deepEqual(await peer.receivedBytes(reply.length), reply);
  });

  it("a packet one byte over 4 MiB is a data overflow: the transport is closed and the handler canceled", async () => {
    let handlerDone!: (reason: unknown) => void;
    const reason = new Promise<unknown>((resolve) => (handlerDone = resolve));
    const { peer, error } = serve(async (call) => {
      await call.receive().catch(() => undefined);
      handlerDone(call.signal.reason);
    });
    peer.raw.write(wire(invoke(), messageFrames(1, 2, Buffer.alloc(MAX_PACKET_BYTES + 1, 1))));
    assert.equal((await error).message, "data overflow");
    await peer.closed;
    assert.equal(peer.received().length, 0, "nothing is answered");
    assert.equal(((await reason) as Error).message, "data overflow");
  });

  it("a single frame announcing more than 4 MiB is refused at its header, before its data", async () => {
    const { peer, error } = serve();
    peer.raw.write(wire(invoke(), header(0x05, 1, 2, MAX_PACKET_BYTES + 1)));
    assert.equal((await error).message, "data overflow");
    await peer.closed;
  });

  it("a frame whose message id goes down is an id monotonicity violation", async () => {
    const { peer, error } = serve(async () => new Promise(() => {}));
    peer.raw.write(wire(invoke(), "04 01 02 01 aa", "05 01 01 00"));
    assert.equal((await error).message, "id monotonicity violation");
    await peer.closed;
  });

  it("a finished packet's id is never reused", async () => {
    const { peer, error } = serve(async () => new Promise(() => {}));
    peer.raw.write(wire(invoke(), "05 01 02 01 aa", "05 01 02 01 bb"));
    assert.equal((await error).message, "id monotonicity violation");
    await peer.closed;
  });

  it("stream id 0 is below the first valid id (1, 1)", async () => {
    const { peer, error } = serve();
    peer.raw.write(wire("03 00 01 11", Buffer.from(METHOD)));
    assert.equal((await error).message, "id monotonicity violation");
    await peer.closed;
  });

  it("a frame that changes kind inside a packet is a protocol error", async () => {
    const { peer, error } = serve(async () => new Promise(() => {}));
    peer.raw.write(wire(invoke(), "04 01 02 01 aa", "0d 01 02 00"));
    assert.equal((await error).message, "packet kind change");
    await peer.closed;
  });

  it("a frame with a new id drops the unfinished packet before it", async () => {
    const { peer } = serve();
    peer.raw.write(wire(invoke(), "04 01 02 03", Buffer.from("abc"), "05 01 03 03", Buffer.from("xyz")));
    const reply = wire("05 01 01 03", Buffer.from("xyz"));
    assert.deepEqual(await peer.receivedBytes(reply.length), reply);
  });

  it("an unknown kind with the control flag is ignored", async () => {
    const { peer } = serve();
    // 0x93: control flag, kind 9, done.
    peer.raw.write(wire(invoke(), "93 01 02 02 ff ff", "05 01 03 02 68 69"));
    const reply = wire("05 01 01 02 68 69");
    assert.deepEqual(await peer.receivedBytes(reply.length), reply);
  });

  it("an unknown kind without the control flag closes the transport", async () => {
    const { peer, error } = serve(async () => new Promise(() => {}));
    peer.raw.write(wire(invoke(), "13 01 02 00"));
    assert.equal((await error).message, "unknown packet kind 9");
    await peer.closed;
  });

  it("a Message for a stream that was never invoked is a protocol error", async () => {
    const { peer, error } = serve();
    peer.raw.write(hex("05 01 01 00"));
    assert.equal((await error).message, "Message for stream 1 before its Invoke");
    await peer.closed;
  });

  it("an Invoke on a live stream is a protocol error", async () => {
    const { peer, error } = serve(async () => new Promise(() => {}));
    peer.raw.write(wire(invoke(), "03 01 02 11", Buffer.from(METHOD)));
    assert.equal((await error).message, "Invoke on existing stream 1");
    await peer.closed;
  });

  it("malformed InvokeMetadata is a protocol error", async () => {
    const { peer, error } = serve();
    peer.raw.write(hex("0f 01 01 02 0a 05"));
    assert.equal((await error).message, "malformed invoke metadata");
    await peer.closed;
  });

  it("the client drops a late packet for a lower stream id than its current RPC's", async () => {
    const peer = rawPeer();
    const client = new DrpcClientConnection(peer.local);
    const first = client.unary(METHOD, Buffer.from("1"));
    peer.raw.write(hex("05 01 01 01 31 0d 01 02 00"));
    assert.deepEqual(Buffer.from(await first), Buffer.from("1"));
    const second = client.unary(METHOD, Buffer.from("2"));
    // A stale Message of stream 1 (ids still grow: (1,5) > (1,2)), then stream 2's reply.
    peer.raw.write(hex("05 01 05 01 78 05 02 01 01 32 0d 02 02 00"));
    assert.deepEqual(Buffer.from(await second), Buffer.from("2"));
  });

  it("the client closes the transport when the server speaks on a stream it never opened", async () => {
    const peer = rawPeer();
    const errors = protocolErrors();
    const client = new DrpcClientConnection(peer.local, { onProtocolError: errors.onProtocolError });
    const call = client.unary(METHOD, Buffer.from("1"));
    peer.raw.write(hex("05 02 01 00"));
    assert.equal((await errors.first).message, "server sent Message for stream 2, which was never opened");
    await assert.rejects(call, /server sent Message for stream 2/);
    await peer.closed;
  });
});
