import { setTimeout as delay } from "node:timers/promises";
import { Wakeup } from "../wakeup.js";

/** setTimeout's largest delay; a later deadline is re-checked then. */
const MAX_TIMER_MS = 2_147_483_647;

/** One read of what a watch stream reports. */
export interface WatchReading<T> {
  value: T;
  /** What the client is told about: a reading with the key of the last one sent is not sent again. */
  key: string;
  /** When (ms since the epoch) the value changes by time alone, with no event; undefined for never. */
  changesAt?: number | undefined;
}

/** What a watch stream reads, and what tells it to read again. */
export interface WatchSource<T> {
  /**
   * Listens for whatever can change the value, calling `notify` for each; resolves once listening,
   * with a function that stops. Called once, before the first read, so no change falls in between.
   */
  listen(notify: () => void): Promise<() => void>;
  /** Reads the value as of `now`. */
  read(now: Date): Promise<WatchReading<T>>;
}

/**
 * A server stream of a value: the current one, then again whenever it changes. However many
 * notifications arrive while a value is being read or sent, the loop holds one "changed" flag
 * and reads once more: what is buffered per watcher stays bounded whatever the event rate or the
 * reader's speed. With `minIntervalMs`, reads are at least that far apart, which bounds the
 * database load a chatty source causes. Ends when `signal` aborts; a failed read ends it with
 * that error.
 */
export async function* watchLoop<T>(source: WatchSource<T>, signal: AbortSignal, opts: { minIntervalMs?: number } = {}): AsyncGenerator<T> {
  const wakeup = new Wakeup();
  const onAbort = () => wakeup.notify();
  signal.addEventListener("abort", onAbort, { once: true });
  let stopListening: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    stopListening = await source.listen(() => wakeup.notify());
    let lastKey: string | undefined;
    while (!signal.aborted) {
      const now = new Date();
      const reading = await source.read(now);
      if (reading.key !== lastKey) {
        lastKey = reading.key;
        yield reading.value;
      }
      clearTimeout(timer);
      if (reading.changesAt !== undefined) timer = setTimeout(() => wakeup.notify(), Math.min(reading.changesAt - now.getTime(), MAX_TIMER_MS));
      await wakeup.wait();
      const early = (opts.minIntervalMs ?? 0) - (Date.now() - now.getTime());
      if (early > 0) {
        await delay(early, undefined, { signal }).catch(() => undefined);
        // The read that follows covers whatever was notified meanwhile.
        wakeup.clear();
      }
    }
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
    stopListening?.();
  }
}
