import { once } from "node:events";
import { Duplex } from "node:stream";
import { FrameDecoder, type FrameHandler } from "../../src/yamux/frame-decoder.js";
import { Session, type SessionOptions, type Stream } from "../../src/yamux/index.js";

/** Counts of what one end of a `duplexPair` did, for coalescing assertions. */
export interface PipeStats {
  writes: number;
}

/**
 * A connected pair of in-memory byte pipes with real backpressure: a write completes only
 * when the other end's reader has room. `chunkSize` re-chunks every write into pieces.
 * Destroying one end closes the other, as a socket reset would.
 */
export function duplexPair(options: { chunkSize?: number } = {}): [PipeEnd, PipeEnd] {
  const a = new PipeEnd(options.chunkSize);
  const b = new PipeEnd(options.chunkSize);
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/** One end of `duplexPair`. */
export class PipeEnd extends Duplex {
  peer!: PipeEnd;
  readonly stats: PipeStats = { writes: 0 };
  private readonly chunkSize: number | undefined;
  private waitingWriter: (() => void) | undefined;

  constructor(chunkSize?: number) {
    super({ allowHalfOpen: true });
    this.chunkSize = chunkSize;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.stats.writes++;
    const size = this.chunkSize ?? chunk.length;
    let room = true;
    for (let i = 0; i < chunk.length; i += size) room = this.peer.push(chunk.subarray(i, i + size)) && room;
    if (room) callback();
    else this.peer.waitingWriter = () => callback();
  }

  override _read(): void {
    const writer = this.waitingWriter;
    this.waitingWriter = undefined;
    writer?.();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.peer.push(null);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.peer.destroyed) this.peer.destroy();
    callback(error);
  }
}

/** A client and a server session over a `duplexPair`. */
export function sessionPair(
  options: { client?: Partial<SessionOptions>; server?: Partial<SessionOptions>; chunkSize?: number } = {},
): { client: Session; server: Session; clientPipe: PipeEnd; serverPipe: PipeEnd } {
  const [clientPipe, serverPipe] = duplexPair({ chunkSize: options.chunkSize });
  const client = new Session(clientPipe, { ...options.client, role: "client" });
  const server = new Session(serverPipe, { ...options.server, role: "server" });
  return { client, server, clientPipe, serverPipe };
}

/** Echoes every accepted stream back to its sender, half-closing after the peer's FIN. */
export function echoStreams(session: Session): void {
  session.on("stream", (stream: Stream) => {
    stream.on("error", () => {});
    stream.pipe(stream);
  });
}

/** Reads a stream to its end without destroying it (`for await` would, and so send RST). */
export function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.once("end", () => resolve(Buffer.concat(chunks)));
    stream.once("error", reject);
    stream.resume(); // also after an explicit pause()
  });
}

/** Resolves with the error a stream is destroyed with. */
export async function streamError(stream: Stream): Promise<Error & { code?: string }> {
  const [error] = await once(stream, "error");
  return error as Error & { code?: string };
}

/** Deterministic bytes for transfer checks. */
export function pattern(size: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Seeded PRNG (mulberry32): the same seed gives the same sequence on every run. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A frame as a raw peer sees it. */
export interface SeenFrame {
  type: number;
  flags: number;
  streamId: number;
  length: number;
}

/** Decodes everything written to `pipe`'s peer into frames (what a raw peer receives). */
export function collectFrames(rawEnd: Duplex): SeenFrame[] {
  const frames: SeenFrame[] = [];
  const handler: FrameHandler = {
    onFrame: (h) => void frames.push({ type: h.type, flags: h.flags, streamId: h.streamId, length: h.length }),
    onPayload: () => {},
    onDecodeError: (message) => {
      throw new Error(`session wrote an undecodable frame: ${message}`);
    },
  };
  const decoder = new FrameDecoder(handler);
  rawEnd.on("data", (chunk: Buffer) => decoder.push(chunk));
  return frames;
}

/** Waits until every frame queued so far by `from` has been processed by its peer. */
export async function settle(from: Session): Promise<void> {
  await from.ping();
}

/** Ends sessions without errors (their streams just close). */
export function destroyAll(...sessions: Session[]): void {
  for (const session of sessions) session.destroy();
}

/** Resolves once the stream has emitted 'close' (now or earlier). */
export async function closed(stream: Stream): Promise<void> {
  if (!stream.closed) await once(stream, "close");
}

/** Accepted streams fail when their session dies; tests that don't care say so here. */
export function ignoreStreamErrors(session: Session): void {
  session.on("stream", (stream: Stream) => stream.on("error", () => {}));
}
