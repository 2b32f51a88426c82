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
  /**
   * Keyed coalescing: an item whose key is already waiting replaces the waiting one (the newest
   * wins, in the place of the first), so at most one item per key waits and a key never costs a
   * second slot. Without it every item waits on its own.
   */
  key?: (item: T) => string;
  /** How long `close` waits for the final flushes. Default 15 s (Coder's stats batcher). */
  closeTimeoutMs?: number;
  /** Default: silent. */
  logger?: Logger;
}

/** Counters of a {@link Batcher}, cumulative except `queued`; what /metrics exports for every batcher. */
export interface BatcherCounters {
  /** Items waiting now. */
  queued: number;
  /** Items accepted by `add` (a replacement under keyed coalescing counts too). */
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

/** What /metrics reads of a batcher at scrape time. */
export interface ObservedBatcher {
  readonly name: string;
  counters(): BatcherCounters;
}

const DEFAULT_CLOSE_TIMEOUT_MS = 15_000;
/** One warning per this many drops: a full queue under load would otherwise log on every add. */
const DROP_WARNING_EVERY = 1000;

/**
 * Collects items and writes them in batches: when `maxItems` wait, or `intervalMs` after the first
 * waiting item, whichever comes first. One flush runs at a time, so batches are written in order.
 * The queue is bounded: `add` never blocks and never throws, it drops and counts. `close` flushes
 * what is left, bounded by `closeTimeoutMs`. With `key`, waiting items coalesce per key.
 */
export class Batcher<T> implements ObservedBatcher {
  readonly name: string;
  /** Waiting items in arrival order; unkeyed items get a fresh key each. */
  private queue = new Map<string | number, T>();
  private nextAnonymousKey = 0;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly opts: Required<Omit<BatcherOptions<T>, "logger" | "key">> & Pick<BatcherOptions<T>, "key"> & { logger: Logger };
  private readonly stats: Omit<BatcherCounters, "queued"> = { added: 0, dropped: 0, flushes: 0, flushErrors: 0, flushedItems: 0, failedItems: 0 };

  constructor(options: BatcherOptions<T>) {
    if (!(options.maxItems >= 1)) throw new RangeError("Batcher: maxItems must be at least 1");
    this.name = options.name;
    this.opts = {
      maxQueue: options.maxItems * 8,
      closeTimeoutMs: DEFAULT_CLOSE_TIMEOUT_MS,
      ...options,
      logger: (options.logger ?? silentLogger()).child({ batcher: options.name }),
    };
  }

  /** Queues an item (or replaces the waiting one of its key). False when it was dropped (queue full, or closed). */
  add(item: T): boolean {
    const key = this.opts.key?.(item) ?? this.nextAnonymousKey++;
    const replaces = this.opts.key !== undefined && this.queue.has(key);
    if (this.closed || (!replaces && this.queue.size >= this.opts.maxQueue)) {
      this.stats.dropped++;
      if (!this.closed && this.stats.dropped % DROP_WARNING_EVERY === 1) this.opts.logger.warn({ dropped: this.stats.dropped }, "batcher queue full, dropping");
      return false;
    }
    this.queue.set(key, item);
    this.stats.added++;
    if (this.queue.size >= this.opts.maxItems) this.kick();
    else this.timer ??= setTimeout(() => this.kick(), this.opts.intervalMs);
    return true;
  }

  /**
   * Keyed batchers: takes back the waiting item of `key` if `match` accepts it, so it is never
   * written. A batch already being written is not touched. True when an item was taken back.
   */
  discard(key: string, match: (item: T) => boolean = () => true): boolean {
    const waiting = this.queue.get(key);
    if (waiting === undefined || !match(waiting)) return false;
    return this.queue.delete(key);
  }

  /** A snapshot of the counters. */
  counters(): BatcherCounters {
    return { queued: this.queue.size, ...this.stats };
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
      while (this.running !== undefined || this.queue.size > 0) {
        await this.running;
        if (this.queue.size > 0) this.kick();
      }
    })();
    let timeout: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      drain.then(() => false),
      new Promise<boolean>((resolve) => (timeout = setTimeout(() => resolve(true), this.opts.closeTimeoutMs))),
    ]);
    clearTimeout(timeout);
    if (timedOut) {
      const lost = this.queue.size;
      this.queue = new Map();
      this.stats.flushErrors++;
      this.stats.failedItems += lost;
      this.opts.logger.error({ lost, timeout_ms: this.opts.closeTimeoutMs }, "batcher final flush timed out");
    }
  }

  /** Starts a flush of up to maxItems now, unless one is running (it re-kicks when done). */
  private kick(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running !== undefined || this.queue.size === 0) return;
    const batch = this.take(this.opts.maxItems);
    this.running = this.write(batch).finally(() => {
      this.running = undefined;
      if (this.closed) return;
      // What arrived during the flush: a full batch goes now, a partial one waits for its interval.
      if (this.queue.size >= this.opts.maxItems) this.kick();
      else if (this.queue.size > 0) this.timer ??= setTimeout(() => this.kick(), this.opts.intervalMs);
    });
  }

  /** Removes and returns the `n` oldest waiting items. */
  private take(n: number): T[] {
    const batch: T[] = [];
    for (const [key, item] of this.queue) {
      if (batch.length === n) break;
      batch.push(item);
      this.queue.delete(key);
    }
    return batch;
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
