import type { Duplex } from "node:stream";

/**
 * What the first bytes of a stream say: the protocol it speaks, `undefined` while they are too
 * few to tell, or `null` for none served here.
 */
export type Classify<P> = (seen: Buffer) => P | undefined | null;

export interface SniffOptions {
  /**
   * A stream that has not told its protocol within this time is destroyed, so idle openers
   * cannot pile up. Without it the stream waits for as long as it stays open.
   */
  timeoutMs?: number;
}

/**
 * Reads a stream's first bytes until `classify` names its protocol, then calls `onChosen` with
 * the stream paused and those bytes put back, so the chosen protocol's reader gets the stream
 * untouched: one reading through 'data' events must `resume()` it; one calling `read()` (Node's
 * HTTP/2 server) reads the buffer itself. A stream that ends, fails, times out or is refused
 * before that is destroyed. `classify` must decide within a few bytes: that bounds what is kept.
 */
export function sniffStream<P>(stream: Duplex, classify: Classify<P>, options: SniffOptions, onChosen: (protocol: P) => void): void {
  let seen: Buffer = Buffer.alloc(0);
  const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => finish(), options.timeoutMs);
  timer?.unref();

  const onData = (chunk: Buffer) => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const protocol = classify(seen);
    if (protocol === undefined) return;
    finish(protocol ?? undefined);
  };
  const onEnd = () => finish();
  const onError = () => finish();
  const onClose = () => finish();

  /** Without a protocol, the stream is destroyed (a yamux stream is reset); nobody reads its error. */
  function finish(protocol?: P) {
    clearTimeout(timer);
    stream.off("data", onData);
    stream.off("end", onEnd);
    stream.off("error", onError);
    stream.off("close", onClose);
    if (protocol === undefined) {
      if (!stream.destroyed) stream.destroy();
      return;
    }
    stream.pause();
    stream.unshift(seen);
    onChosen(protocol);
  }

  stream.on("data", onData);
  stream.once("end", onEnd);
  stream.once("error", onError);
  stream.once("close", onClose);
}
