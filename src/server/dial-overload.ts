import { monitorEventLoopDelay, type IntervalHistogram } from "node:perf_hooks";
import { HttpError } from "../http/http-error.js";

/** How finely the event loop's delay is sampled. */
const LAG_RESOLUTION_MS = 10;
/** The window the lag is judged over. */
const LAG_WINDOW_MS = 1_000;
/** Samples the current window needs before its own median counts. */
const MIN_WINDOW_SAMPLES = 10;
/** What a refused dial is told to wait, in seconds; clients add their own jitter. */
export const OVERLOAD_RETRY_AFTER_SECONDS = 2;
/**
 * Waiting dials let through per turn of the event loop. The loop's turns lengthen as the process
 * gets busier, so the admission rate falls by itself when the work of new agents (upgrade, tunnel,
 * manifest) would crowd out the connected ones.
 */
const DIALS_PER_TURN = 8;
/**
 * The longest a dial waits for its turn; then it gets 503. Below the usual 15 s handshake timeout
 * of WebSocket clients, so a dial that was let through is one its client still waits for.
 */
export const DIAL_QUEUE_TIMEOUT_MS = 10_000;

/** Why the process refuses a dial, for `agentgate_overload_refusals_total`. */
export type OverloadReason = "event_loop_lag" | "pending_dials" | "queue_timeout";

export interface DialOverloadOptions {
  /** Median event-loop delay of the last second past which new dials are refused. */
  maxLagMs: number;
  /** Dials waiting for their turn or being admitted, past which new ones are refused. */
  maxPendingDials: number;
  /**
   * Dials let through per second at most (0 or absent: no bound beyond the turns of the loop).
   * Each admitted dial costs the process about a millisecond of CPU (upgrade, tunnel, manifest);
   * the bound keeps a reconnect storm from taking the time the connected agents' RPCs need.
   */
  maxDialsPerSecond?: number;
  /** Default {@link DIAL_QUEUE_TIMEOUT_MS}. */
  queueTimeoutMs?: number;
  /** Counts each refusal. */
  onRefusal?: (reason: OverloadReason) => void;
}

interface WaitingDial {
  start: () => void;
  refuse: (reason: OverloadReason) => void;
  skip: () => void;
  /** True once its client hung up: it is dropped without work. */
  gone: () => boolean;
  queuedAt: number;
}

const DETAILS: Record<OverloadReason, string> = {
  pending_dials: "too many agents are dialing at once",
  event_loop_lag: "the server is saturated",
  queue_timeout: "the dial waited too long for its turn",
};

/** The 503 of a refused dial, with Retry-After. */
export function overloadError(reason: OverloadReason): HttpError {
  const headers = { "retry-after": String(OVERLOAD_RETRY_AFTER_SECONDS) };
  return new HttpError(503, { message: "Server is overloaded; retry later.", detail: DETAILS[reason] }, { headers });
}

/**
 * Admits agent dials in arrival order at the pace the process keeps up with: a few per turn of
 * the event loop, so a reconnect storm of thousands is a queue served first come, first served,
 * not thousands of upgrades sharing the processor until every one of them misses its client's
 * timeout. A dial is refused with 503 and Retry-After when too many are pending, when it waited
 * past the queue timeout, or while the event loop's median delay passes the bound (the process
 * is saturated by its connected agents: admitting more would slow them all). Agents already
 * connected are untouched.
 */
export class DialOverload {
  private readonly histogram: IntervalHistogram;
  private readonly window: NodeJS.Timeout;
  /** The median lag of the last full window, in ms. */
  private lastWindowLagMs = 0;
  private readonly waiting: WaitingDial[] = [];
  /** Index of the oldest waiting dial in `waiting` (shifted in chunks, not one by one). */
  private head = 0;
  private running = 0;
  private turnScheduled = false;
  private readonly queueTimeoutMs: number;
  private readonly ratePerMs: number;
  /** Dials the rate bound lets through now: refilled with time, at most a tenth of a second's worth. */
  private tokens: number;
  private readonly maxTokens: number;
  private refilledAt = performance.now();

  constructor(private readonly options: DialOverloadOptions) {
    this.queueTimeoutMs = options.queueTimeoutMs ?? DIAL_QUEUE_TIMEOUT_MS;
    this.ratePerMs = (options.maxDialsPerSecond ?? 0) / 1000;
    this.maxTokens = Math.max(1, this.ratePerMs * 100);
    this.tokens = this.maxTokens;
    this.histogram = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
    this.histogram.enable();
    this.window = setInterval(() => {
      this.lastWindowLagMs = this.histogram.count > 0 ? this.histogram.percentile(50) / 1e6 : 0;
      this.histogram.reset();
    }, LAG_WINDOW_MS);
    this.window.unref();
  }

  /**
   * The event-loop lag judged now, in ms: the median delay of the last window, or of the current
   * one once it has enough samples. A median, not the worst: one long garbage-collection pause of
   * a process holding ten thousand sockets is not saturation.
   */
  get lagMs(): number {
    const current = this.histogram.count >= MIN_WINDOW_SAMPLES ? this.histogram.percentile(50) / 1e6 : 0;
    // The histogram counts its sampling interval into each delay.
    return Math.max(this.lastWindowLagMs, current) - LAG_RESOLUTION_MS;
  }

  /** Dials waiting for their turn or being admitted right now. */
  get pendingDials(): number {
    return this.waiting.length - this.head + this.running;
  }

  /**
   * Runs `admission` when the dial's turn comes; rejects with a 503 {@link HttpError} when it is
   * refused. `gone` tells whether the client hung up meanwhile (then nothing runs).
   */
  admit<T>(admission: () => Promise<T>, gone: () => boolean): Promise<T> {
    const refusal = this.pendingDials >= this.options.maxPendingDials ? "pending_dials" : this.lagMs > this.options.maxLagMs ? "event_loop_lag" : undefined;
    if (refusal !== undefined) return Promise.reject(this.refused(refusal));
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({
        start: () => {
          this.running++;
          admission()
            .then(resolve, reject)
            .finally(() => this.running--);
        },
        refuse: (reason) => reject(this.refused(reason)),
        skip: () => reject(overloadError("queue_timeout")),
        gone,
        queuedAt: Date.now(),
      });
      this.scheduleTurn();
    });
  }

  private refused(reason: OverloadReason): HttpError {
    this.options.onRefusal?.(reason);
    return overloadError(reason);
  }

  private scheduleTurn(): void {
    if (this.turnScheduled) return;
    this.turnScheduled = true;
    if (this.ratePerMs === 0 || this.tokens >= 1) setImmediate(() => this.turn());
    else setTimeout(() => this.turn(), Math.ceil((1 - this.tokens) / this.ratePerMs));
  }

  /** Dials the rate bound lets through this turn (all of DIALS_PER_TURN without a bound). */
  private allowance(): number {
    if (this.ratePerMs === 0) return DIALS_PER_TURN;
    const now = performance.now();
    this.tokens = Math.min(this.maxTokens, this.tokens + (now - this.refilledAt) * this.ratePerMs);
    this.refilledAt = now;
    return Math.min(DIALS_PER_TURN, Math.floor(this.tokens));
  }

  /** Lets the next few waiting dials through; those whose client left or that waited too long go. */
  private turn(): void {
    this.turnScheduled = false;
    const now = Date.now();
    const allowed = this.allowance();
    let started = 0;
    while (started < allowed && this.head < this.waiting.length) {
      const dial = this.waiting[this.head]!;
      this.waiting[this.head++] = undefined as unknown as WaitingDial;
      // A client that hung up is not refused (nobody reads it), only skipped.
      if (dial.gone()) dial.skip();
      else if (now - dial.queuedAt > this.queueTimeoutMs) dial.refuse("queue_timeout");
      else {
        dial.start();
        started++;
        if (this.ratePerMs > 0) this.tokens--;
      }
    }
    if (this.head === this.waiting.length) {
      this.waiting.length = 0;
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.waiting.length) {
      this.waiting.splice(0, this.head);
      this.head = 0;
    }
    if (this.head < this.waiting.length) this.scheduleTurn();
  }

  close(): void {
    clearInterval(this.window);
    this.histogram.disable();
  }
}
