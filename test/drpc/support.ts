import { once } from "node:events";
import { connect, createServer, type AddressInfo, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { Session } from "../../src/yamux/index.js";
import { reshapedWrites } from "../support/reshaped-writes.js";
import { duplexPair, type PipeEnd } from "../yamux/helpers.js";

/** Bytes from hex pairs: `hex("03 01 01 21")`. */
export function hex(pairs: string): Buffer {
  return Buffer.from(pairs.replace(/\s+/g, ""), "hex");
}

/** Concatenates hex strings and byte buffers in order; text goes in as `Buffer.from(text)`. */
export function wire(...parts: (string | Buffer)[]): Buffer {
  return Buffer.concat(parts.map((part) => (typeof part === "string" ? hex(part) : part)));
}

/** A raw peer: `local` goes to the connection under test; the test writes and reads `raw`. */
export interface RawPeer {
  local: PipeEnd;
  raw: PipeEnd;
  /** Everything `raw` received so far. */
  received(): Buffer;
  /** Resolves with the first `n` bytes received, once there are that many. */
  receivedBytes(n: number): Promise<Buffer>;
  /** Resolves when the connection under test destroyed or ended its transport. */
  closed: Promise<void>;
}

/** A raw peer over an in-memory pipe pair; `chunkSize` re-chunks every write both ways. */
export function rawPeer(options: { chunkSize?: number } = {}): RawPeer {
  const [local, raw] = duplexPair(options);
  const chunks: Buffer[] = [];
  let waiters: { n: number; resolve: (b: Buffer) => void }[] = [];
  raw.on("data", (chunk: Buffer) => {
    chunks.push(chunk);
    const all = Buffer.concat(chunks);
    waiters = waiters.filter((w) => {
      if (all.length < w.n) return true;
      w.resolve(all.subarray(0, w.n));
      return false;
    });
  });
  const closed = new Promise<void>((resolve) => {
    raw.once("close", () => resolve());
    raw.once("end", () => resolve());
  });
  return {
    local,
    raw,
    received: () => Buffer.concat(chunks),
    receivedBytes(n) {
      const all = Buffer.concat(chunks);
      if (all.length >= n) return Promise.resolve(all.subarray(0, n));
      return new Promise((resolve) => waiters.push({ n, resolve }));
    },
    closed,
  };
}

/** Lets queued microtasks and I/O callbacks of this turn run (a tick boundary, not a timer). */
export async function nextTurn(): Promise<void> {
  await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Resolves with the first error a connection reported through `onProtocolError`. */
export function protocolErrors(): { onProtocolError: (e: Error) => void; first: Promise<Error> } {
  let report!: (e: Error) => void;
  const first = new Promise<Error>((resolve) => (report = resolve));
  return { onProtocolError: (e) => report(e), first };
}

export { once };

/** A yamux client and server session over a real TCP connection on 127.0.0.1. */
export async function yamuxOverTcp(): Promise<{ client: Session; server: Session; close(): Promise<void> }> {
  const listener = createServer();
  listener.listen(0, "127.0.0.1");
  await once(listener, "listening");
  const { port } = listener.address() as AddressInfo;
  const accepted = once(listener, "connection") as Promise<[Socket]>;
  const socket = connect(port, "127.0.0.1");
  await once(socket, "connect");
  const [serverSocket] = await accepted;
  const client = new Session(socket, { role: "client" });
  const server = new Session(serverSocket, { role: "server" });
  return {
    client,
    server,
    async close() {
      client.destroy();
      server.destroy();
      listener.close();
      await once(listener, "close");
    },
  };
}

/**
 * Wraps a Duplex so every write leaves as one-byte writes, each waiting for the last: on a yamux
 * stream that is one Data frame per byte, so the peer reads one-byte chunks.
 */
export function oneByteWrites(inner: Duplex): Duplex {
  const writeByte = (byte: Buffer) => new Promise<void>((resolve, reject) => inner.write(byte, (err) => (err ? reject(err) : resolve())));
  return reshapedWrites(inner, (chunk, callback) => {
    (async () => {
      for (let i = 0; i < chunk.length; i++) await writeByte(chunk.subarray(i, i + 1));
    })().then(() => callback(), callback);
  });
}
