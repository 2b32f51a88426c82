/**
 * A latency histogram with logarithmic buckets (5 % wide, from 10 µs up), cheap to record into
 * and to merge: the scaletest's processes send their counts and the parent adds them up.
 */
const BASE_MS = 0.01;
const GROWTH = Math.log(1.05);

/** Counts by bucket index, sparse: what crosses the process boundary. */
export type HistogramCounts = Record<number, number>;

export class LatencyHistogram {
  private counts: HistogramCounts = {};
  private total = 0;
  private maxMs = 0;

  record(ms: number): void {
    const i = ms <= BASE_MS ? 0 : Math.ceil(Math.log(ms / BASE_MS) / GROWTH);
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.total++;
    if (ms > this.maxMs) this.maxMs = ms;
  }

  merge(other: { counts: HistogramCounts; max: number }): void {
    for (const [k, n] of Object.entries(other.counts)) {
      this.counts[Number(k)] = (this.counts[Number(k)] ?? 0) + n;
      this.total += n;
    }
    if (other.max > this.maxMs) this.maxMs = other.max;
  }

  get count(): number {
    return this.total;
  }

  get max(): number {
    return this.maxMs;
  }

  /** The upper bound of the bucket holding quantile `q` (0..1), capped at the largest sample; 0 when empty. */
  quantile(q: number): number {
    if (this.total === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (const i of Object.keys(this.counts).map(Number).sort((a, b) => a - b)) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(BASE_MS * Math.exp(i * GROWTH), this.maxMs);
    }
    return this.maxMs;
  }

  /** The counts to send elsewhere; resets this histogram when `reset`. */
  snapshot(reset = false): { counts: HistogramCounts; max: number } {
    const out = { counts: this.counts, max: this.maxMs };
    if (reset) {
      this.counts = {};
      this.total = 0;
      this.maxMs = 0;
    } else {
      out.counts = { ...this.counts };
    }
    return out;
  }
}
