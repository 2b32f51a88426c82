import type { Logger } from "../log.js";
import { silentLogger } from "../log.js";

/** Options of {@link Batcher}. */
export interface BatcherOptions<T> {
  /** For logs and metrics, e.g. "heartbeats". */
  name: string;
  /** A flush starts as soon as this many items wait. */
  maxItems: number;
  /** Items that may wait, not counting a batch being written; beyond it `add` drops. Default 8 × maxItems. */
  maxQueue?: number;
  /** A flush starts this long after the first item of a batch arrived. */
  intervalMs: number;
  /** Writes one batch (at most maxItems). A throw is logged and counted; the batch is dropped, not retried. */
  flush: (items: T[]) => Promise<void>;
  /** How long `close` waits for the final flushes. Default 15 s (Coder's stats batcher). */
  closeTimeoutMs?: number;
  /** Default: silent. */
  logger?: Logger;
}

/** Counters of a {@link Batcher}, cumulative except `queued`; for Prometheus. */
export interface BatcherCounters {
  /** Items waiting now. */
  queued: number;
  /** Items accepted by `add`. */
  added: number;
  /** Items refused by `add` because the queue was full or the batcher closed. */
  dropped: number;
  /** Flushes that succeeded. */
  flushes: number;
  /** Flushes that threw or timed out at close. */
  flushErrors: number;
  /** Items in successful flushes. */
  flushedItems: number;
  /** Items lost in failed flushes. */
  failedItems: number;
}

const DEFAULT_CLOSE_TIMEOUT_MS = 15_000;

/**
 * Collects items and writes them in batches: when `maxItems` wait, or `intervalMs` after the first
 * waiting item, whichever comes first. One flush runs at a time, so batches are written in order.
 * The queue is bounded: `add` never blocks and never throws, it drops and counts. `close` flushes
 * what is left, bounded by `closeTimeoutMs`.
 */
export class Batcher<T> {
  private queue: T[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly opts: Required<Omit<BatcherOptions<T>, "logger">> & { logger: Logger };
  private readonly stats: Omit<BatcherCounters, "queued"> = { added: 0, dropped: 0, flushes: 0, flushErrors: 0, flushedItems: 0, failedItems: 0 };

  constructor(options: BatcherOptions<T>) {
    if (!(options.maxItems >= 1)) throw new RangeError("Batcher: maxItems must be at least 1");
    this.opts = {
      maxQueue: options.maxItems * 8,
      closeTimeoutMs: DEFAULT_CLOSE_TIMEOUT_MS,
      ...options,
      logger: (options.logger ?? silentLogger()).child({ batcher: options.name }),
    };
  }

  /** Queues an item. False when it was dropped (queue full, or closed). */
  add(item: T): boolean {
    if (this.closed || this.queue.length >= this.opts.maxQueue) {
      this.stats.dropped++;
      if (!this.closed && this.stats.dropped % 1000 === 1) this.opts.logger.warn({ dropped: this.stats.dropped }, "batcher queue full, dropping");
      return false;
    }
    this.queue.push(item);
    this.stats.added++;
    if (this.queue.length >= this.opts.maxItems) this.kick();
    else this.timer ??= setTimeout(() => this.kick(), this.opts.intervalMs);
    return true;
  }

  /** A snapshot of the counters. */
  counters(): BatcherCounters {
    return { queued: this.queue.length, ...this.stats };
  }

  /**
   * Stops accepting items and flushes every waiting one. Resolves when done or after
   * `closeTimeoutMs`; what is still unwritten then counts as failed. Never rejects.
   */
  close(): Promise<void> {
    this.closing ??= this.finish();
    return this.closing;
  }

  private async finish(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    const drain = (async () => {
      while (this.running !== undefined || this.queue.length > 0) {
        await this.running;
        if (this.queue.length > 0) this.kick();
      }
    })();
    let timeout: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      drain.then(() => false),
      new Promise<boolean>((resolve) => (timeout = setTimeout(() => resolve(true), this.opts.closeTimeoutMs))),
    ]);
    clearTimeout(timeout);
    if (timedOut) {
      const lost = this.queue.length;
      this.queue = [];
      this.stats.flushErrors++;
      this.stats.failedItems += lost;
      this.opts.logger.error({ lost, timeout_ms: this.opts.closeTimeoutMs }, "batcher final flush timed out");
    }
  }

  /** Starts a flush of up to maxItems now, unless one is running (it re-kicks when done). */
  private kick(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running !== undefined || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.opts.maxItems);
    this.running = this.write(batch).finally(() => {
      this.running = undefined;
      if (this.closed) return;
      // What arrived during the flush: a full batch goes now, a partial one waits for its interval.
      if (this.queue.length >= this.opts.maxItems) this.kick();
      else if (this.queue.length > 0) this.timer ??= setTimeout(() => this.kick(), this.opts.intervalMs);
    });
  }

  private async write(batch: T[]): Promise<void> {
    try {
      await this.opts.flush(batch);
      this.stats.flushes++;
      this.stats.flushedItems += batch.length;
    } catch (err) {
      this.stats.flushErrors++;
      this.stats.failedItems += batch.length;
      this.opts.logger.error({ err, items: batch.length }, "batcher flush failed; batch dropped");
    }
  }
}
