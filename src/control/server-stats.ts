import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { GetServerStatsResponseSchema, ServerStatsSampleSchema, type GetServerStatsResponse, type ServerStatsSample } from "../../gen/agentgate/control/v1/control_pb.js";
import type { Logger } from "../log.js";
import type { ServerMetrics } from "../server/metrics.js";

/** One sample every 10 s: fine enough for an hour's plot (360 points), cheap enough to forget. */
export const STATS_SAMPLE_INTERVAL_MS = 10_000;
/** How far back GetServerStats reaches: "the last hour" on a dashboard. */
export const STATS_HISTORY_MS = 60 * 60 * 1000;
/** The `code` label of an RPC that succeeded; every other code counts as an error. */
const RPC_OK_CODE = "ok";

/** The counters a sample reads, as numbers since the server started. */
export interface StatsSource {
  connectedAgents(): Promise<number>;
  rpcCounts(): Promise<{ total: number; errors: number }>;
}

/** The figures of {@link ServerMetrics} that GetServerStats reports, summed over every label. */
export function metricsStatsSource(metrics: ServerMetrics): StatsSource {
  return {
    async connectedAgents() {
      return (await metrics.connectedAgents.get()).values.reduce((sum, v) => sum + v.value, 0);
    },
    async rpcCounts() {
      let total = 0;
      let errors = 0;
      for (const { value, labels } of (await metrics.rpcs.get()).values) {
        total += value;
        if (labels.code !== RPC_OK_CODE) errors += value;
      }
      return { total, errors };
    },
  };
}


/** What the sampler needs. */
export interface ServerStatsSamplerOptions {
  source: StatsSource;
  /** This process's replica id, reported with the figures. */
  replicaId: string;
  logger: Logger;
  /** Default {@link STATS_SAMPLE_INTERVAL_MS}. */
  intervalMs?: number;
  /** Default {@link STATS_HISTORY_MS}; the ring keeps this span's worth of samples. */
  historyMs?: number;
}

/**
 * Samples the server's own figures at a fixed interval into a ring of bounded length, so a
 * dashboard opened just now can still plot the last hour. The first sample is taken at once.
 * `close()` stops the timer.
 */
export class ServerStatsSampler {
  readonly startedAt = new Date();
  readonly intervalMs: number;
  private readonly capacity: number;
  private readonly samples: ServerStatsSample[] = [];
  private readonly timer: NodeJS.Timeout;
  private sampling: Promise<void>;

  constructor(private readonly options: ServerStatsSamplerOptions) {
    this.intervalMs = options.intervalMs ?? STATS_SAMPLE_INTERVAL_MS;
    this.capacity = Math.max(1, Math.floor((options.historyMs ?? STATS_HISTORY_MS) / this.intervalMs));
    this.sampling = this.sample();
    this.timer = setInterval(() => (this.sampling = this.sample()), this.intervalMs);
    this.timer.unref();
  }

  /** GetServerStats' answer: the ring, oldest first, and the figures now. */
  async snapshot(): Promise<GetServerStatsResponse> {
    // The first sample, at least, is in the ring before anyone reads it.
    await this.sampling;
    const now = new Date();
    // Over at least one interval when the ring has one, so a call just after a sample shows no spike.
    const base = this.samples.findLast((x) => timestampDate(x.at!).getTime() <= now.getTime() - this.intervalMs) ?? this.samples[0];
    const current = await this.measure(now, base);
    return create(GetServerStatsResponseSchema, {
      replicaId: this.options.replicaId,
      startedAt: timestampFromDate(this.startedAt),
      sampleIntervalSeconds: Math.round(this.intervalMs / 1000),
      samples: [...this.samples],
      current,
    });
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.sampling;
  }

  private async sample(): Promise<void> {
    try {
      this.samples.push(await this.measure(new Date(), this.samples.at(-1)));
      if (this.samples.length > this.capacity) this.samples.shift();
    } catch (err) {
      this.options.logger.warn({ err }, "sampling the server's figures failed");
    }
  }

  /** The figures at `at`, with rates over the time since `base` (since the start without one). */
  private async measure(at: Date, base: ServerStatsSample | undefined): Promise<ServerStatsSample> {
    const [connectedAgents, { total, errors }] = await Promise.all([this.options.source.connectedAgents(), this.options.source.rpcCounts()]);
    const since = base === undefined ? this.startedAt.getTime() : timestampDate(base.at!).getTime();
    const seconds = (at.getTime() - since) / 1000;
    const rate = (delta: number) => (seconds > 0 ? delta / seconds : 0);
    return create(ServerStatsSampleSchema, {
      at: timestampFromDate(at),
      connectedAgents,
      rpcsTotal: BigInt(total),
      rpcErrorsTotal: BigInt(errors),
      rpcRate: rate(total - Number(base?.rpcsTotal ?? 0)),
      rpcErrorRate: rate(errors - Number(base?.rpcErrorsTotal ?? 0)),
    });
  }
}
