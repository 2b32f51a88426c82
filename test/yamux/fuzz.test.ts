import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Flag, frameHeader, FrameType, type FrameType as FrameTypeValue } from "../../src/yamux/frame.js";
import { Session, type Stream } from "../../src/yamux/index.js";
import { collectFrames, duplexPair, random } from "./helpers.js";

/** Sequences per CI run; raise locally with YAMUX_FUZZ_RUNS for a longer hunt. */
const RUNS = Number(process.env.YAMUX_FUZZ_RUNS ?? 1000);
const FRAMES_PER_RUN = 200;
const MAX_STREAMS = 8;
const MAX_WINDOW = 512 * 1024;

/**
 * Mostly well-formed frames on streams the generator opened, so sequences run deep, with
 * the edge cases a hostile agent would try sprinkled in at low rates.
 */
function frameGenerator(next: () => number) {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const opened: number[] = [];
  let nextId = 1;
  const openStream = (): number => {
    if (opened.length > 0 && next() < 0.005) return pick(opened); // duplicate SYN
    opened.push(nextId);
    nextId += 2;
    return opened.at(-1)!;
  };
  const someStream = (): number => {
    if (next() < 0.002) return pick([0, 2, 0xffff_ffff, nextId + 2 * Math.floor(next() * 100)]);
    return pick(opened);
  };
  const rare = (p: number): boolean => next() < p;
  const u32 = (): number => Math.floor(next() * 2 ** 32);
  return (): Buffer => {
    if (opened.length === 0) return frameHeader(FrameType.WindowUpdate, Flag.SYN, openStream(), 0);
    if (rare(0.001)) return Buffer.from(Array.from({ length: 12 }, () => Math.floor(next() * 256)));
    const roll = next();
    if (roll < 0.15) {
      const id = openStream();
      return next() < 0.5
        ? frameHeader(FrameType.WindowUpdate, Flag.SYN, id, Math.floor(next() * 65536))
        : Buffer.concat([frameHeader(FrameType.Data, Flag.SYN, id, 5), Buffer.from("hello")]);
    }
    if (roll < 0.6) {
      const length = rare(0.002) ? u32() : Math.floor(next() * 4096);
      // Usually the whole body; sometimes a short one, so later headers land inside a body.
      const bodyLength = rare(0.001) ? Math.floor(next() * 1024) : Math.min(length, 4096);
      const flags = rare(0.002) ? Math.floor(next() * 65536) : pick([0, 0, 0, 0, 0, 0, Flag.FIN, Flag.RST, Flag.ACK]);
      return Buffer.concat([frameHeader(FrameType.Data, flags, someStream(), length), Buffer.alloc(bodyLength, 0x61)]);
    }
    if (roll < 0.85) {
      const flags = pick([0, 0, 0, 0, Flag.FIN, Flag.RST, Flag.ACK]);
      return frameHeader(FrameType.WindowUpdate, flags, someStream(), rare(0.01) ? u32() : Math.floor(next() * 65536));
    }
    if (roll < 0.998) return frameHeader(FrameType.Ping, pick([Flag.SYN, Flag.ACK, 0]), rare(0.002) ? someStream() : 0, u32());
    return frameHeader(FrameType.GoAway, 0, rare(0.1) ? someStream() : 0, pick([0, 0, 1, 2, 99]));
  };
}

/** What the server does with an accepted stream: the behaviours of real handlers, chosen by the seed. */
function handle(stream: Stream, next: () => number): void {
  stream.on("error", () => {});
  const roll = next();
  if (roll < 0.3) stream.resume();
  else if (roll < 0.5) stream.pause();
  else if (roll < 0.6) stream.destroy();
  else if (roll < 0.8) stream.end(Buffer.alloc(Math.floor(next() * 300_000)));
  else stream.write(Buffer.alloc(Math.floor(next() * 1000)));
}

describe("fuzz", () => {
  it(`${RUNS} seeded frame sequences never make a server session throw or exceed its bounds`, async () => {
    for (let seed = 1; seed <= RUNS; seed++) {
      const next = random(seed);
      const nextFrame = frameGenerator(next);
      const [raw, ours] = duplexPair();
      const session = new Session(ours, { role: "server", maxStreams: MAX_STREAMS, maxWindow: MAX_WINDOW });
      session.on("error", () => {});
      const streams: Stream[] = [];
      session.on("stream", (stream: Stream) => {
        streams.push(stream);
        handle(stream, next);
      });
      collectFrames(raw); // also checks that everything the session writes decodes
      const input = Buffer.concat(Array.from({ length: FRAMES_PER_RUN }, nextFrame));
      for (let offset = 0; offset < input.length && !session.closed; ) {
        const size = 1 + Math.floor(next() * (next() < 0.5 ? 16 : 8192));
        raw.write(input.subarray(offset, offset + size));
        offset += size;
        assert.ok(session.streamCount <= MAX_STREAMS, `seed ${seed}: ${session.streamCount} streams`);
        for (const stream of streams) {
          assert.ok(stream.readableLength <= MAX_WINDOW, `seed ${seed}: ${stream.readableLength} bytes buffered`);
        }
        if (next() < 0.05) await new Promise((resolve) => setImmediate(resolve));
      }
      session.destroy();
    }
  });
});
