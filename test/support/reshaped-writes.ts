import { Duplex } from "node:stream";

/**
 * Wraps `inner` so reads pass through unchanged (with backpressure) and every write goes through
 * `write` instead, which decides how the bytes leave (re-chunked, one byte at a time). End and
 * destroy reach `inner`; its end, error and close reach the wrapper.
 */
export function reshapedWrites(inner: Duplex, write: (chunk: Buffer, callback: (error?: Error | null) => void) => void): Duplex {
  const outer = new Duplex({
    read() {
      inner.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      write(chunk, callback);
    },
    final(callback) {
      inner.end();
      callback();
    },
    destroy(err, callback) {
      inner.destroy(err ?? undefined);
      callback(err);
    },
  });
  inner.on("data", (data: Buffer) => {
    if (!outer.push(data)) inner.pause();
  });
  inner.once("end", () => outer.push(null));
  inner.once("error", (err) => outer.destroy(err));
  inner.once("close", () => outer.destroy());
  return outer;
}
