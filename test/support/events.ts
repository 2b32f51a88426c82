/**
 * Pubsub subscribers for tests: subscribe first, then await what arrives, with bounded waits so a
 * missing event fails the test instead of hanging it. `Collector` keeps every delivery raw, errors
 * included, in order; `recordEvents` subscribes one and reads JSON events from it by match.
 */
import type { Pubsub } from "../../src/db/pubsub.js";

/** What a {@link Collector} saw, in order. */
export type Seen = { event: string } | { error: Error };

const DEFAULT_WAIT_MS = 10_000;

/** Callbacks to pass to `subscribe`, and a queue of what they received. */
export class Collector {
  readonly seen: Seen[] = [];
  private waiters: (() => void)[] = [];

  readonly onEvent = (payload: Buffer): void => this.push({ event: payload.toString("utf8") });
  readonly onError = (error: Error): void => this.push({ error });

  /** Resolves with what was seen once `count` items have arrived; rejects after `timeoutMs`. */
  waitFor(count: number, timeoutMs = DEFAULT_WAIT_MS): Promise<Seen[]> {
    return this.until(
      () => (this.seen.length >= count ? this.seen.slice(0, count) : undefined),
      timeoutMs,
      () => `expected ${count} pubsub deliveries, got ${this.seen.length}: ${JSON.stringify(this.seen.slice(-3))}`,
    );
  }

  /** Resolves with `check`'s first defined answer, asked now and after every delivery; rejects after `timeoutMs`. */
  async until<T>(check: () => T | undefined, timeoutMs: number, failure: () => string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = check();
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(failure());
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  private push(s: Seen): void {
    this.seen.push(s);
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

/** JSON events of one channel, each handed out once. */
export interface EventRecorder<T> {
  /** The events recorded so far and not handed out by `next`. */
  readonly events: T[];
  /** Resolves with the first recorded event (past or future) that matches and was not handed out yet. */
  next(match: (event: T) => boolean, timeoutMs?: number): Promise<T>;
  stop(): void;
}

/** Subscribes to `channel` and records its JSON events. */
export async function recordEvents<T = unknown>(pubsub: Pubsub, channel: string): Promise<EventRecorder<T>> {
  const collector = new Collector();
  const stop = await pubsub.subscribe(channel, collector.onEvent, collector.onError);
  const handedOut = new Set<number>();
  return {
    get events() {
      return collector.seen.flatMap((item, i) => (handedOut.has(i) || !("event" in item) ? [] : [JSON.parse(item.event) as T]));
    },
    next(match, timeoutMs = DEFAULT_WAIT_MS) {
      const find = () => {
        for (const [i, item] of collector.seen.entries()) {
          if (handedOut.has(i) || !("event" in item)) continue;
          const event = JSON.parse(item.event) as T;
          if (!match(event)) continue;
          handedOut.add(i);
          return { event };
        }
        return undefined;
      };
      return collector.until(find, timeoutMs, () => `no matching event on ${channel} within ${timeoutMs} ms`).then((f) => f.event);
    },
    stop,
  };
}
