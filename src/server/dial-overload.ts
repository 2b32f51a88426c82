import { monitorEventLoopDelay, type IntervalHistogram } from "node:perf_hooks";

/** How finely the event loop's delay is sampled. */
const LAG_RESOLUTION_MS = 10;
/** The window the lag is judged over: a burst past the bound refuses dials for about this long. */
const LAG_WINDOW_MS = 1_000;
/** What a refused dial is told to wait, in seconds; clients add their own jitter. */
export const OVERLOAD_RETRY_AFTER_SECONDS = 2;

/** Why the process refuses new dials, for `agentgate_overload_refusals_total`. */
export type OverloadReason = "event_loop_lag" | "pending_dials";

export interface DialOverloadOptions {
  /** Lag (the worst delay seen in the last window) past which new dials are refused. */
  maxLagMs: number;
  /** Dials being admitted at once (token lookup in progress) past which new ones are refused. */
  maxPendingDials: number;
}

/**
 * Decides whether the process takes a new agent dial: not when its event loop lags past the
 * bound (it is saturated, and a dial adds a token lookup, a tracker and a tunnel), nor when too
 * many dials are already being admitted (a reconnect storm). Refused dials get 503 with
 * Retry-After; agents already connected are untouched.
 */
export class DialOverload {
  private readonly histogram: IntervalHistogram;
  private readonly window: NodeJS.Timeout;
  /** The worst lag of the last full window, in ms. */
  private lastWindowLagMs = 0;
  private pending = 0;

  constructor(private readonly options: DialOverloadOptions) {
    this.histogram = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
    this.histogram.enable();
    this.window = setInterval(() => {
      this.lastWindowLagMs = this.histogram.max / 1e6;
      this.histogram.reset();
    }, LAG_WINDOW_MS);
    this.window.unref();
  }

  /** The event-loop lag judged now: the worse of the last window and the current one, in ms. */
  get lagMs(): number {
    // The histogram counts its sampling interval into each delay.
    return Math.max(this.lastWindowLagMs, this.histogram.max / 1e6) - LAG_RESOLUTION_MS;
  }

  /** Dials being admitted right now. */
  get pendingDials(): number {
    return this.pending;
  }

  /** Why a new dial must be refused now; undefined when it may go ahead. */
  refusal(): OverloadReason | undefined {
    if (this.pending >= this.options.maxPendingDials) return "pending_dials";
    if (this.lagMs > this.options.maxLagMs) return "event_loop_lag";
    return undefined;
  }

  /** Counts a dial as being admitted until `admission` settles. */
  async track<T>(admission: () => Promise<T>): Promise<T> {
    this.pending++;
    try {
      return await admission();
    } finally {
      this.pending--;
    }
  }

  close(): void {
    clearInterval(this.window);
    this.histogram.disable();
  }
}
