/** Collects pubsub events of one channel, so a test can subscribe first and await what arrives. */
import type { Pubsub } from "../../src/db/pubsub.js";

export interface EventRecorder<T> {
  events: T[];
  /** Resolves with the first recorded event (past or future) that matches. Bounded by `timeoutMs`. */
  next(match: (event: T) => boolean, timeoutMs?: number): Promise<T>;
  stop(): void;
}

export async function recordEvents<T = unknown>(pubsub: Pubsub, channel: string): Promise<EventRecorder<T>> {
  const events: T[] = [];
  const waiters: { match: (e: T) => boolean; resolve: (e: T) => void }[] = [];
  const unsubscribe = await pubsub.subscribe(
    channel,
    (payload) => {
      const event = JSON.parse(payload.toString("utf8")) as T;
      events.push(event);
      for (const w of waiters.filter((w) => w.match(event))) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(event);
      }
    },
    () => undefined,
  );
  return {
    events,
    next(match, timeoutMs = 5_000) {
      const seen = events.find(match);
      if (seen !== undefined) {
        events.splice(events.indexOf(seen), 1);
        return Promise.resolve(seen);
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching event on ${channel} within ${timeoutMs} ms`)), timeoutMs);
        waiters.push({
          match,
          resolve: (e) => {
            clearTimeout(timer);
            events.splice(events.indexOf(e), 1);
            resolve(e);
          },
        });
      });
    },
    stop: unsubscribe,
  };
}
