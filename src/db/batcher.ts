import type { Logger } from "../log.js";
import { isDataError } from "./errors.js";
import { silentLogger } from "../log.js";

/** Why a batcher dropped items: the `reason` label of `agentgate_batcher_dropped_total`. */
export const DROP_REASONS = ["queue_full", "group_full", "closed", "retries_exhausted", "rejected", "close_timeout"] as const;
export type DropReason = (typeof DROP_REASONS)[number];

/** Options of {@link Batcher}. */
export interface BatcherOptions<T> {
  /** For logs and metrics, e.g. "heartbeats". */
  name: string;
  /** A flush starts as soon as this many items wait. */
  maxItems: number;
  /**
   * Items that may wait, counting batches waiting to be retried but not a batch being written;
   * beyond it `add` drops. Default 8 × maxItems.
   */
  maxQueue?: number;
  /** A flush starts this long after the first item of a batch arrived. */
  intervalMs: number;
  /**
   * Writes one batch (at most maxItems). A throw is logged and counted, and the batch waits again,
   * first in line, for up to `maxAttempts` tries with backoff; then it is dropped.
   */
  flush: (items: T[]) => Promise<void>;
  /**
   * Keyed coalescing: an item whose key is already waiting replaces the waiting one (the newest
   * wins, in the place of the first), so at most one item per key waits and a key never costs a
   * second slot. Without it every item waits on its own.
   */
  key?: (item: T) => string;
  /**
   * Fair share: whose item it is (e.g. the agent id). At most `maxPerGroup` items of one group wait,
   * so one group filling the queue can't push out the others' items.
   */
  group?: (item: T) => string;
  /** Items of one `group` that may wait. Default: maxQueue (no fair share). */
  maxPerGroup?: number;
  /**
   * Whether a flush's error is worth a retry. Default: anything but an error in the data
   * ({@link isDataError}), which would fail again and hold up everything behind it; such a batch
   * is dropped at once (`rejected`).
   */
  retryable?: (err: unknown) => boolean;
  /** Tries of an item, the first included, before it is dropped. Default 10 (with the backoff, about 45 s). */
  maxAttempts?: number;
  /** Wait before the first retry; it doubles after every failed flush in a row. Default 250 ms. */
  retryBaseMs?: number;
  /** Longest wait between retries. Default 10 s. */
  retryMaxMs?: number;
  /** Drops are logged at most once per this long, as one line with the counts. Default 10 s. */
  warnIntervalMs?: number;
  /** How long `close` waits for the final flushes. Default 15 s (Coder's stats batcher). */
  closeTimeoutMs?: number;
  /** Default: silent. */
  logger?: Logger;
}

/** Counters of a {@link Batcher}, cumulative except `queued`; what /metrics exports for every batcher. */
export interface BatcherCounters {
  /** Items waiting now, retries included. */
  queued: number;
  /** Items accepted by `add` (a replacement under keyed coalescing counts too). */
  added: number;
  /** Items dropped for any reason: the sum of `droppedBy`. */
  dropped: number;
  /** Items dropped, by why. */
  droppedBy: Record<DropReason, number>;
  /** Flushes that succeeded. */
  flushes: number;
  /** Flushes that threw or timed out at close. */
  flushErrors: number;
  /** Items in successful flushes. */
  flushedItems: number;
  /** Items lost after their flushes failed: retries exhausted, or unwritten when close timed out. */
  failedItems: number;
}

/** What /metrics reads of a batcher at scrape time. */
export interface ObservedBatcher {
  readonly name: string;
  counters(): BatcherCounters;
}

const DEFAULT_CLOSE_TIMEOUT_MS = 15_000;
const DEFAULT_MAX_ATTEMPTS = 10;
const DEFAULT_RETRY_BASE_MS = 250;
const DEFAULT_RETRY_MAX_MS = 10_000;
const DEFAULT_WARN_INTERVAL_MS = 10_000;

/** A waiting item and how many flushes of it have failed. */
interface Entry<T> {
  item: T;
  group: string | undefined;
  failures: number;
}

/**
 * Collects items and writes them in batches: when `maxItems` wait, or `intervalMs` after the first
 * waiting item, whichever comes first. One flush runs at a time, so batches are written in order.
 * The queue is bounded in total and, with `group`, per group: `add` never blocks and never throws,
 * it drops and counts. A failed flush is retried with backoff, bounded by `maxAttempts` and the
 * queue's bound. `close` flushes what is left, bounded by `closeTimeoutMs`. With `key`, waiting
 * items coalesce per key.
 */
export class Batcher<T> implements ObservedBatcher {
  readonly name: string;
  /** Waiting items in arrival order (retried ones first); unkeyed items get a fresh key each. */
  private queue = new Map<string | number, Entry<T>>();
  /** Waiting items per group. */
  private readonly groups = new Map<string, number>();
  private nextAnonymousKey = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Set while waiting to retry after a failed flush: nothing is flushed before it fires. */
  private retryTimer: NodeJS.Timeout | undefined;
  private retryAt = 0;
  /** Failed flushes in a row: the backoff's exponent. */
  private failuresInRow = 0;
  private running: Promise<void> | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;
  private warnTimer: NodeJS.Timeout | undefined;
  /** Drops not logged yet, by reason. */
  private unwarned: Partial<Record<DropReason, number>> = {};
  private readonly opts: Required<Omit<BatcherOptions<T>, "logger" | "key" | "group">> & Pick<BatcherOptions<T>, "key" | "group"> & { logger: Logger };
  private readonly stats: Omit<BatcherCounters, "queued" | "droppedBy"> = { added: 0, dropped: 0, flushes: 0, flushErrors: 0, flushedItems: 0, failedItems: 0 };
  private readonly droppedBy = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;

  constructor(options: BatcherOptions<T>) {
    if (!(options.maxItems >= 1)) throw new RangeError("Batcher: maxItems must be at least 1");
    if (options.maxAttempts !== undefined && !(options.maxAttempts >= 1)) throw new RangeError("Batcher: maxAttempts must be at least 1");
    this.name = options.name;
    const maxQueue = options.maxQueue ?? options.maxItems * 8;
    this.opts = {
      closeTimeoutMs: DEFAULT_CLOSE_TIMEOUT_MS,
      maxAttempts: DEFAULT_MAX_ATTEMPTS,
      retryBaseMs: DEFAULT_RETRY_BASE_MS,
      retryMaxMs: DEFAULT_RETRY_MAX_MS,
      warnIntervalMs: DEFAULT_WARN_INTERVAL_MS,
      maxPerGroup: maxQueue,
      retryable: (err: unknown) => !isDataError(err),
      ...options,
      maxQueue,
      logger: (options.logger ?? silentLogger()).child({ batcher: options.name }),
    };
  }

  /** Queues an item (or replaces the waiting one of its key). False when it was dropped (queue or its group full, or closed). */
  add(item: T): boolean {
    if (this.closed) return this.drop("closed", 1);
    const key = this.opts.key?.(item) ?? this.nextAnonymousKey++;
    const group = this.opts.group?.(item);
    const waiting = this.opts.key !== undefined ? this.queue.get(key) : undefined;
    if (waiting === undefined) {
      if (this.queue.size >= this.opts.maxQueue) return this.drop("queue_full", 1);
      if (group !== undefined && (this.groups.get(group) ?? 0) >= this.opts.maxPerGroup) return this.drop("group_full", 1);
    } else {
      this.countGroup(waiting.group, -1);
    }
    this.queue.set(key, { item, group, failures: 0 });
    this.countGroup(group, 1);
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
    if (waiting === undefined || !match(waiting.item)) return false;
    this.countGroup(waiting.group, -1);
    return this.queue.delete(key);
  }

  /** A snapshot of the counters. */
  counters(): BatcherCounters {
    return { queued: this.queue.size, ...this.stats, droppedBy: { ...this.droppedBy } };
  }

  /**
   * Stops accepting items and flushes every waiting one (retrying failed flushes as usual).
   * Resolves when done or after `closeTimeoutMs`; what is still unwritten then counts as failed.
   * Never rejects.
   */
  close(): Promise<void> {
    this.closing ??= this.finish();
    return this.closing;
  }

  private async finish(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    let timedOut = false;
    const drain = (async () => {
      while (!timedOut && (this.running !== undefined || this.queue.size > 0)) {
        await this.running;
        const backoff = this.retryAt - Date.now();
        if (backoff > 0 && this.queue.size > 0) await new Promise((resolve) => setTimeout(resolve, backoff).unref());
        if (timedOut) break;
        clearTimeout(this.retryTimer);
        this.retryTimer = undefined;
        if (this.queue.size > 0) this.kick();
      }
    })();
    let timeout: NodeJS.Timeout | undefined;
    timedOut = await Promise.race([
      drain.then(() => false),
      new Promise<boolean>((resolve) => (timeout = setTimeout(() => resolve(true), this.opts.closeTimeoutMs))),
    ]);
    clearTimeout(timeout);
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (timedOut) {
      const lost = this.queue.size;
      this.clearQueue();
      this.stats.flushErrors++;
      this.stats.failedItems += lost;
      this.droppedBy.close_timeout += lost;
      this.stats.dropped += lost;
      this.opts.logger.error({ lost, timeout_ms: this.opts.closeTimeoutMs }, "batcher final flush timed out");
    }
    this.logDrops();
    clearTimeout(this.warnTimer);
    this.warnTimer = undefined;
  }

  /** Starts a flush of up to maxItems now, unless one is running (it re-kicks when done) or a retry is waiting. */
  private kick(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running !== undefined || this.retryTimer !== undefined || this.queue.size === 0) return;
    const batch = this.take(this.opts.maxItems);
    this.running = this.write(batch).finally(() => {
      this.running = undefined;
      if (this.closed || this.retryTimer !== undefined) return;
      // What arrived during the flush: a full batch goes now, a partial one waits for its interval.
      if (this.queue.size >= this.opts.maxItems) this.kick();
      else if (this.queue.size > 0) this.timer ??= setTimeout(() => this.kick(), this.opts.intervalMs);
    });
  }

  /** Removes and returns the `n` oldest waiting entries with their keys. */
  private take(n: number): [string | number, Entry<T>][] {
    const batch: [string | number, Entry<T>][] = [];
    for (const [key, entry] of this.queue) {
      if (batch.length === n) break;
      batch.push([key, entry]);
      this.queue.delete(key);
      this.countGroup(entry.group, -1);
    }
    return batch;
  }

  private async write(batch: [string | number, Entry<T>][]): Promise<void> {
    try {
      await this.opts.flush(batch.map(([, e]) => e.item));
      this.stats.flushes++;
      this.stats.flushedItems += batch.length;
      this.failuresInRow = 0;
    } catch (err) {
      this.stats.flushErrors++;
      if (!this.opts.retryable(err)) {
        this.stats.failedItems += batch.length;
        this.drop("rejected", batch.length);
        this.opts.logger.error({ err, items: batch.length }, "batcher flush failed on its data; batch dropped");
        return;
      }
      this.failuresInRow++;
      const kept = this.requeue(batch);
      const delay = Math.min(this.opts.retryMaxMs, this.opts.retryBaseMs * 2 ** (this.failuresInRow - 1));
      this.opts.logger.error({ err, items: batch.length, retrying: kept, retry_in_ms: delay }, "batcher flush failed");
      if (kept > 0 || this.queue.size > 0) this.scheduleRetry(delay);
    }
  }

  /**
   * Puts a failed batch back first in line: each item unless it has had its tries, a newer item
   * of its key has arrived meanwhile (that one is written instead), or the queue has no room left
   * (the newest items are kept). Returns how many went back.
   */
  private requeue(batch: [string | number, Entry<T>][]): number {
    const back = new Map<string | number, Entry<T>>();
    let exhausted = 0;
    let noRoom = 0;
    for (const [key, entry] of batch) {
      entry.failures++;
      if (entry.failures >= this.opts.maxAttempts) exhausted++;
      else if (this.queue.has(key)) continue;
      else if (back.size + this.queue.size >= this.opts.maxQueue) noRoom++;
      else back.set(key, entry);
    }
    const kept = back.size;
    for (const entry of back.values()) this.countGroup(entry.group, 1);
    for (const [key, entry] of this.queue) back.set(key, entry);
    this.queue = back;
    if (exhausted > 0) {
      this.stats.failedItems += exhausted;
      this.drop("retries_exhausted", exhausted);
    }
    if (noRoom > 0) {
      this.stats.failedItems += noRoom;
      this.drop("queue_full", noRoom);
    }
    return kept;
  }

  private scheduleRetry(delay: number): void {
    if (this.closed) {
      // close's drain loop waits for retryAt itself.
      this.retryAt = Date.now() + delay;
      return;
    }
    clearTimeout(this.timer);
    this.timer = undefined;
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.kick();
    }, delay);
  }

  private countGroup(group: string | undefined, delta: number): void {
    if (group === undefined) return;
    const n = (this.groups.get(group) ?? 0) + delta;
    if (n <= 0) this.groups.delete(group);
    else this.groups.set(group, n);
  }

  private clearQueue(): void {
    this.queue = new Map();
    this.groups.clear();
  }

  /** Counts dropped items and logs them, at most one line per `warnIntervalMs`. Returns false, `add`'s answer. */
  private drop(reason: DropReason, n: number): false {
    this.stats.dropped += n;
    this.droppedBy[reason] += n;
    // Refusals at shutdown are expected; they are counted, not logged.
    if (reason === "closed") return false;
    this.unwarned[reason] = (this.unwarned[reason] ?? 0) + n;
    if (this.warnTimer === undefined) this.logDrops();
    return false;
  }

  /** One warning with the drops since the last one; the next may come after `warnIntervalMs`. */
  private logDrops(): void {
    const counts = this.unwarned;
    this.unwarned = {};
    if (Object.keys(counts).length === 0) {
      this.warnTimer = undefined;
      return;
    }
    this.opts.logger.warn({ dropped: counts, dropped_total: this.stats.dropped, interval_ms: this.opts.warnIntervalMs }, "batcher dropped items");
    this.warnTimer = setTimeout(() => this.logDrops(), this.opts.warnIntervalMs);
    this.warnTimer.unref();
  }
}
