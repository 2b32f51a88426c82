/**
 * A pubsub subscriber for tests: collects events and errors, and lets a test await the next one
 * (with a bounded wait, so a missing event fails the test instead of hanging it).
 */

/** What a {@link Collector} saw, in order. */
export type Seen = { event: string } | { error: Error };

/** Callbacks to pass to `subscribe`, and a queue of what they received. */
export class Collector {
  readonly seen: Seen[] = [];
  private waiters: (() => void)[] = [];

  readonly onEvent = (payload: Buffer): void => this.push({ event: payload.toString("utf8") });
  readonly onError = (error: Error): void => this.push({ error });

  /** Resolves with what was seen once `count` items have arrived; rejects after `timeoutMs`. */
  async waitFor(count: number, timeoutMs = 10_000): Promise<Seen[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.seen.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`expected ${count} pubsub deliveries, got ${this.seen.length}: ${JSON.stringify(this.seen.slice(-3))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.seen.slice(0, count);
  }

  private push(s: Seen): void {
    this.seen.push(s);
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
