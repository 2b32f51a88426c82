import assert from "node:assert/strict";
import { Duplex } from "node:stream";
import { describe, it } from "node:test";
import { CLIENT_PREFACE, FRAME_HEADER_BYTES, FrameFlag, FrameType, frame, readFrameHeader, settingsPayload } from "../../src/http2/frames.js";
import { ServerConnection, type ServerStream } from "../../src/http2/server-connection.js";
import { random } from "../yamux/helpers.js";

/** Sequences per run; raise locally with HTTP2_FUZZ_RUNS for a longer hunt. */
const RUNS = Number(process.env.HTTP2_FUZZ_RUNS ?? 500);
const FRAMES_PER_RUN = 150;

/** HPACK blocks: a request (static table only), a literal that indexes, a reference into the dynamic table, garbage. */
const BLOCKS = [
  Buffer.from([0x83, 0x86, 0x84]),
  Buffer.concat([Buffer.from([0x83, 0x86, 0x44, 0x05]), Buffer.from("/a/b1"), Buffer.from([0x40, 0x01]), Buffer.from("x"), Buffer.from([0x01]), Buffer.from("y")]),
  Buffer.from([0x83, 0x86, 0xbe]),
  Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]),
  Buffer.alloc(0),
];

function frames(next: () => number): () => Buffer {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const rare = (p: number) => next() < p;
  let nextId = 1;
  const opened: number[] = [];
  /** A header block left open: the next frame continues it (or, rarely, breaks it). */
  let continuing: number | undefined;
  const someStream = () => (opened.length === 0 || rare(0.01) ? pick([0, 2, nextId, nextId + 2, 0x7fffffff]) : pick(opened));
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n >>> 0);
    return b;
  };
  return () => {
    if (continuing !== undefined && !rare(0.02)) {
      const id = continuing;
      const last = next() < 0.7;
      if (last) continuing = undefined;
      return frame(FrameType.Continuation, last ? FrameFlag.EndHeaders : 0, id, BLOCKS[1]!.subarray(0, 4));
    }
    const roll = next();
    if (roll < 0.25 || opened.length === 0) {
      const id = rare(0.01) ? Math.max(1, nextId - 2) : nextId;
      if (id === nextId) {
        opened.push(id);
        nextId += 2;
      }
      const flags = pick([FrameFlag.EndHeaders, FrameFlag.EndHeaders | FrameFlag.EndStream, FrameFlag.EndHeaders | FrameFlag.Padded, FrameFlag.EndHeaders | FrameFlag.Priority, ...(rare(0.2) ? [0] : [])]);
      if ((flags & FrameFlag.EndHeaders) === 0) continuing = id;
      let payload = rare(0.01) ? BLOCKS[3]! : pick([BLOCKS[0]!, BLOCKS[1]!, BLOCKS[2]!, BLOCKS[4]!]);
      if (flags & FrameFlag.Padded) payload = Buffer.concat([Buffer.from([3]), payload, Buffer.alloc(3)]);
      if (flags & FrameFlag.Priority) payload = Buffer.concat([Buffer.alloc(5), payload]);
      return frame(FrameType.Headers, flags, id, payload);
    }
    if (roll < 0.6) {
      const length = rare(0.01) ? 70_000 : Math.floor(next() * 3000);
      const flags = pick([0, 0, 0, FrameFlag.EndStream, FrameFlag.Padded]);
      const body = Buffer.alloc(Math.min(length, 16_384), 0x61);
      if (flags & FrameFlag.Padded && body.length > 0) body[0] = rare(0.05) ? 255 : Math.floor(next() * body.length) & 0xff;
      return frame(FrameType.Data, flags, someStream(), body);
    }
    if (roll < 0.72) return frame(FrameType.WindowUpdate, 0, next() < 0.3 ? 0 : someStream(), u32(rare(0.02) ? pick([0, 0x7fffffff]) : 1 + Math.floor(next() * 100_000)));
    if (roll < 0.8) return frame(FrameType.RstStream, 0, someStream(), u32(pick([0, 8, 2, 99])));
    if (roll < 0.86) return frame(FrameType.Ping, pick([0, FrameFlag.Ack]), rare(0.02) ? 1 : 0, Buffer.alloc(rare(0.02) ? 7 : 8));
    if (roll < 0.92) {
      const [id, value] = rare(0.05) ? [pick([1, 2, 3, 4, 5, 6, 99]), Math.floor(next() * 2 ** 32)] : pick([[4, Math.floor(next() * 300_000)], [5, 16_384 + Math.floor(next() * 100_000)], [1, 0], [3, 10]] as [number, number][]);
      return frame(FrameType.Settings, rare(0.02) ? FrameFlag.Ack : 0, 0, settingsPayload([[id, value]]));
    }
    if (roll < 0.97) return frame(FrameType.Priority, 0, someStream(), Buffer.alloc(rare(0.05) ? 4 : 5));
    if (roll < 0.995) return frame(pick([0x42, 0x0a]) as FrameType, 0, 0, Buffer.alloc(8)); // unknown types: ignored
    return rare(0.5) ? frame(pick([FrameType.PushPromise, FrameType.GoAway]), 0, 0, Buffer.alloc(8)) : Buffer.from(Array.from({ length: 1 + Math.floor(next() * 20) }, () => Math.floor(next() * 256)));
  };
}

/** A handler per stream chosen by the seed: read, answer at once, answer late, reset, or ignore. */
function handler(next: () => number, live: ServerStream[]): (stream: ServerStream) => void {
  return (stream) => {
    live.push(stream);
    const what = Math.floor(next() * 5);
    if (what === 0) stream.onData = (c) => stream.consumed(c.length);
    if (what === 1) {
      stream.respond([[":status", "200"]]);
      stream.write(Buffer.alloc(Math.floor(next() * 200_000), 0x62));
      stream.end([["grpc-status", "0"]]);
    }
    if (what === 2) stream.onEnd = () => stream.respond([[":status", "204"]], true);
    if (what === 3) stream.reset();
  };
}

describe("HTTP/2 server connection fuzz", () => {
  it(`${RUNS} seeded sequences of mostly valid, partly hostile frames: nothing throws, every byte written is a whole frame`, async () => {
    let goAways = 0;
    let responses = 0;
    for (let seed = 1; seed <= RUNS; seed++) {
      const next = random(seed);
      const written: Buffer[] = [];
      const transport = new Duplex({
        read() {},
        write(chunk: Buffer, _enc, cb) {
          written.push(chunk);
          cb();
        },
      });
      const live: ServerStream[] = [];
      new ServerConnection(transport, { onStream: handler(next, live), maxConcurrentStreams: 1 + Math.floor(next() * 10), streamWindow: 1 + Math.floor(next() * 200_000) });
      const gen = frames(next);
      let input = Buffer.concat([CLIENT_PREFACE, frame(FrameType.Settings, 0, 0, settingsPayload([]))]);
      for (let i = 0; i < FRAMES_PER_RUN; i++) input = Buffer.concat([input, gen()]);
      try {
        for (let at = 0; at < input.length; ) {
          const size = 1 + Math.floor(next() * 4000);
          transport.emit("data", input.subarray(at, at + size));
          at += size;
          // What one read queued goes out on a microtask: let it.
          await Promise.resolve();
          // Handlers that answer late answer now and then between reads.
          if (next() < 0.1 && live.length > 0) live[Math.floor(next() * live.length)]!.end();
        }
        transport.emit("end");
        await Promise.resolve();
      } catch (err) {
        assert.fail(`seed ${seed}: ${(err as Error).stack}`);
      }
      const out = Buffer.concat(written);
      let at = 0;
      while (at + FRAME_HEADER_BYTES <= out.length) {
        const h = readFrameHeader(out, at);
        if (h.type === FrameType.GoAway) goAways++;
        if (h.type === FrameType.Headers && h.streamId !== 0) responses++;
        at += FRAME_HEADER_BYTES + h.length;
      }
      assert.equal(at, out.length, `seed ${seed}: the server's output is whole frames`);
    }
    // The sequences reach deep enough to be answered, and hostile enough to be refused.
    assert.ok(responses > RUNS, `${responses} responses`);
    assert.ok(goAways > RUNS / 10, `${goAways} GOAWAYs`);
  });
});
