import assert from "node:assert/strict";
import { once } from "node:events";
import { describe, it } from "node:test";
import { Flag, frameHeader, FrameType, type FrameType as FrameTypeValue } from "../../src/yamux/frame.js";
import { GoAwayCode, Session, YamuxErrorCode, type SessionOptions, type Stream } from "../../src/yamux/index.js";
import { collectFrames, duplexPair, random, streamError, type SeenFrame } from "./helpers.js";

/** A server session whose peer is a raw byte pipe the test writes frames into. */
function rawPeer(options: Partial<SessionOptions> = {}, read = true) {
  const [raw, ours] = duplexPair();
  const session = new Session(ours, { ...options, role: "server" });
  const errors: (Error & { code: string })[] = [];
  session.on("error", (e) => errors.push(e));
  const accepted: Stream[] = [];
  session.on("stream", (s: Stream) => {
    s.on("error", () => {});
    accepted.push(s);
  });
  const frames: SeenFrame[] = read ? collectFrames(raw) : [];
  const send = (type: FrameTypeValue, flags: number, id: number, length: number, body?: Buffer): boolean =>
    raw.write(body === undefined ? frameHeader(type, flags, id, length) : Buffer.concat([frameHeader(type, flags, id, length), body]));
  return { raw, ours, session, errors, accepted, frames, send };
}

/** Resolves once everything written so far was processed: a ping comes back (or the session closed). */
let nextOpaque = 0x5e771e;
async function answered(peer: ReturnType<typeof rawPeer>): Promise<void> {
  if (peer.session.closed) return;
  const opaque = nextOpaque++;
  peer.send(FrameType.Ping, Flag.SYN, 0, opaque);
  while (!peer.session.closed && !peer.frames.some((f) => f.type === FrameType.Ping && f.length === opaque)) {
    await once(peer.raw, "data");
  }
}

function assertProtocolGoAway(peer: ReturnType<typeof rawPeer>): void {
  assert.ok(peer.session.closed, "session closed");
  assert.equal(peer.errors[0]?.code, YamuxErrorCode.Protocol);
  const last = peer.frames.at(-1);
  assert.deepEqual(last && [last.type, last.length], [FrameType.GoAway, GoAwayCode.ProtocolError]);
}

describe("hostile input", () => {
  it("random bytes end the session with a protocol error or leave it sound, never throwing", async () => {
    const next = random(42);
    for (let run = 0; run < 200; run++) {
      const peer = rawPeer({ maxStreams: 8 });
      const bytes = Buffer.alloc(Math.floor(next() * 4096));
      for (let i = 0; i < bytes.length; i++) bytes[i] = next() < 0.5 ? 0 : Math.floor(next() * 256);
      peer.raw.write(bytes);
      await answered(peer);
      assert.ok(peer.session.streamCount <= 8);
      if (peer.session.closed) assert.equal(peer.errors[0]?.code, YamuxErrorCode.Protocol);
      peer.session.destroy();
    }
  });

  it("a header with version 1 gets GoAway(protocol error) and the session closes", async () => {
    const peer = rawPeer();
    const header = frameHeader(FrameType.Ping, Flag.SYN, 0, 1);
    header[0] = 1;
    peer.raw.write(header);
    await answered(peer);
    assertProtocolGoAway(peer);
  });

  it("an unknown frame type gets GoAway(protocol error)", async () => {
    const peer = rawPeer();
    peer.send(4 as FrameTypeValue, 0, 1, 0);
    await answered(peer);
    assertProtocolGoAway(peer);
  });

  it("a Data header claiming 256 MiB is rejected before any body byte is buffered", async () => {
    const peer = rawPeer();
    peer.send(FrameType.WindowUpdate, Flag.SYN, 1, 0);
    peer.send(FrameType.Data, 0, 1, 256 * 1024 * 1024, Buffer.alloc(64 * 1024));
    await answered(peer);
    assertProtocolGoAway(peer);
    assert.equal(peer.session.counters.bytesIn, 0);
  });

  it("a Data header over the window on a stream it opens (SYN) is rejected too", async () => {
    const peer = rawPeer();
    peer.send(FrameType.Data, Flag.SYN, 1, 256 * 1024 + 1);
    await answered(peer);
    assertProtocolGoAway(peer);
  });

  it("20,000 pings in one 240 KB chunk are all answered, without stack overflow, in well under 100 ms", async () => {
    const peer = rawPeer();
    const count = 20_000;
    const chunk = Buffer.concat(Array.from({ length: count }, (_, i) => frameHeader(FrameType.Ping, Flag.SYN, 0, i)));
    assert.equal(chunk.length, 240_000);
    const started = performance.now();
    peer.raw.write(chunk);
    const elapsed = performance.now() - started;
    await answered(peer);
    assert.ok(elapsed < 100, `took ${elapsed.toFixed(1)} ms`);
    const pongs = peer.frames.filter((f) => f.type === FrameType.Ping && f.flags === Flag.ACK);
    assert.equal(pongs.length, count + 1);
    assert.equal(pongs[count - 1]!.length, count - 1);
    assert.equal(peer.session.counters.pingsReceived, count + 1);
    peer.session.destroy();
  });

  it("a SYN flood from a peer that never reads is refused within bounds and input stops", async () => {
    const maxStreams = 1024;
    const peer = rawPeer({ maxStreams }, false);
    const perChunk = 20_000;
    let accepted = true;
    let id = 1;
    for (let c = 0; c < 10 && accepted; c++) {
      const chunk = Buffer.allocUnsafe(perChunk * 12);
      for (let i = 0; i < perChunk; i++, id += 2) frameHeader(FrameType.WindowUpdate, Flag.SYN, id, 0).copy(chunk, i * 12);
      accepted = peer.raw.write(chunk);
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(peer.session.closed, false);
    assert.equal(peer.session.streamCount, maxStreams);
    assert.ok(peer.session.counters.streamsRefused > 0);
    assert.equal(accepted, false, "the flooding writer was pushed back");
    assert.ok(peer.ours.writableLength < 2 * 1024 * 1024, `replies held: ${peer.ours.writableLength} bytes`);
    peer.session.destroy();
  });

  it("a WindowUpdate that would overflow the send window past 2^32-1 gets GoAway(protocol error)", async () => {
    const peer = rawPeer();
    peer.send(FrameType.WindowUpdate, Flag.SYN, 1, 0);
    peer.send(FrameType.WindowUpdate, 0, 1, 0xffff_ffff);
    await answered(peer);
    assertProtocolGoAway(peer);
  });

  it("a frame on a stream that was never opened gets GoAway(protocol error)", async () => {
    const peer = rawPeer();
    peer.send(FrameType.Data, 0, 7, 3, Buffer.from("abc"));
    await answered(peer);
    assertProtocolGoAway(peer);
  });

  it("a frame on a stream we already reset is discarded and the session carries on", async () => {
    const peer = rawPeer();
    peer.send(FrameType.WindowUpdate, Flag.SYN, 1, 0);
    await answered(peer);
    peer.accepted[0]!.destroy();
    peer.send(FrameType.Data, 0, 1, 3, Buffer.from("abc"));
    peer.send(FrameType.WindowUpdate, 0, 1, 100);
    await answered(peer);
    assert.equal(peer.session.closed, false);
    assert.ok(peer.frames.some((f) => f.streamId === 1 && f.flags & Flag.RST));
    peer.session.destroy();
  });

  for (const [name, frame] of [
    ["a SYN with the server's parity", [FrameType.WindowUpdate, Flag.SYN, 2, 0]],
    ["a Data frame on stream 0", [FrameType.Data, 0, 0, 0]],
    ["a Ping on stream 3", [FrameType.Ping, Flag.SYN, 3, 0]],
    ["a GoAway with an unknown code", [FrameType.GoAway, 0, 0, 7]],
  ] as [string, [FrameTypeValue, number, number, number]][]) {
    it(`${name} gets GoAway(protocol error)`, async () => {
      const peer = rawPeer();
      peer.send(...frame);
      await answered(peer);
      assertProtocolGoAway(peer);
    });
  }

  it("a second SYN for an open stream gets GoAway(protocol error)", async () => {
    const peer = rawPeer();
    peer.send(FrameType.WindowUpdate, Flag.SYN, 1, 0);
    peer.send(FrameType.WindowUpdate, Flag.SYN, 1, 0);
    await answered(peer);
    assertProtocolGoAway(peer);
  });

  it("Data after the peer's FIN resets that stream only", async () => {
    const peer = rawPeer();
    peer.send(FrameType.WindowUpdate, Flag.SYN, 1, 0);
    peer.send(FrameType.Data, Flag.FIN, 1, 2, Buffer.from("ok"));
    await answered(peer);
    const failed = streamError(peer.accepted[0]!);
    peer.send(FrameType.Data, 0, 1, 4, Buffer.from("late"));
    assert.equal((await failed).code, YamuxErrorCode.Protocol);
    await answered(peer);
    assert.equal(peer.session.closed, false);
    assert.ok(peer.frames.some((f) => f.streamId === 1 && f.flags & Flag.RST));
    assert.equal(peer.session.counters.protocolErrors, 1);
    peer.session.destroy();
  });
});
