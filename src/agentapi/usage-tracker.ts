import type { Logger } from "../log.js";
import { silentLogger } from "../log.js";
import type { Clock } from "./publish.js";

/** Options of {@link UsageTracker}. */
export interface UsageTrackerOptions {
  /** Writes `last_used_at = at` for these workspaces in one statement. */
  write(workspaceIds: string[], at: Date): Promise<void>;
  /** How often used workspaces are written (Coder: 60 s). */
  flushIntervalMs: number;
  /** Distinct workspaces remembered between flushes; beyond it marks are dropped and counted. */
  maxPending?: number;
  now: Clock;
  logger?: Logger;
}

/** Plenty for one replica's fleet; a bound so a flood of ids can't grow memory without limit. */
const DEFAULT_MAX_PENDING = 100_000;

/**
 * Remembers which workspaces were used and writes their `last_used_at` once per interval, so a
 * workspace is written at most once per flush however often its agents report (agent-api.md §2.3).
 * `last_used_at` is the flush time, as in Coder. `close` writes what is pending.
 */
export class UsageTracker {
  readonly name = "usage";
  private pending = new Set<string>();
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();
  private closed = false;
  private droppedCount = 0;
  private flushErrorCount = 0;
  private readonly logger: Logger;

  constructor(private readonly opts: UsageTrackerOptions) {
    this.logger = (opts.logger ?? silentLogger()).child({ batcher: this.name });
    this.timer = setInterval(() => void this.flush(), opts.flushIntervalMs);
    this.timer.unref();
  }

  /** Marks a workspace used; it is written on the next flush. */
  markUsed(workspaceId: string): void {
    if (this.closed) return;
    if (!this.pending.has(workspaceId) && this.pending.size >= (this.opts.maxPending ?? DEFAULT_MAX_PENDING)) {
      this.droppedCount++;
      return;
    }
    this.pending.add(workspaceId);
  }

  /** Workspaces waiting for the next flush. */
  get queued(): number {
    return this.pending.size;
  }

  /** Marks refused because too many workspaces were pending. */
  get dropped(): number {
    return this.droppedCount;
  }

  /** Flushes that failed (their workspaces were dropped). */
  get flushErrors(): number {
    return this.flushErrorCount;
  }

  /** Stops the timer and writes what is pending. Never rejects. */
  async close(): Promise<void> {
    if (this.closed) return this.flushing;
    this.closed = true;
    clearInterval(this.timer);
    await this.flush();
  }

  private flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (this.pending.size === 0) return;
      const ids = [...this.pending];
      this.pending = new Set();
      try {
        await this.opts.write(ids, this.opts.now());
      } catch (err) {
        this.flushErrorCount++;
        this.logger.error({ err, workspaces: ids.length }, "usage flush failed; dropped");
      }
    });
    return this.flushing;
  }
}
