import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** Counters a batcher exposes, read at scrape time. */
export interface BatcherGauges {
  readonly name: string;
  readonly queued: number;
  readonly dropped: number;
  readonly flushErrors: number;
}

/**
 * The server's Prometheus metrics, on a registry of its own so several servers in one
 * process (tests, benchmarks) don't collide.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly connectedAgents = new Gauge({ name: "agentgate_agents_connected", help: "Agents with an open tunnel on this replica.", registers: [this.registry] });
  readonly upgrades = new Counter({ name: "agentgate_agent_upgrades_total", help: "Agent endpoint requests by result (ok, or the HTTP status refused with).", labelNames: ["result"], registers: [this.registry] });
  readonly rpcs = new Counter({ name: "agentgate_rpcs_total", help: "RPCs served, by method and Connect code.", labelNames: ["method", "code"], registers: [this.registry] });
  readonly rpcSeconds = new Histogram({
    name: "agentgate_rpc_duration_seconds",
    help: "RPC latency in the server, by method.",
    labelNames: ["method"],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly pings = new Counter({ name: "agentgate_agent_pings_total", help: "WebSocket pings sent to agents.", registers: [this.registry] });
  readonly pingTimeouts = new Counter({ name: "agentgate_agent_ping_timeouts_total", help: "Agents disconnected for not answering pings.", registers: [this.registry] });
  readonly evictions = new Counter({ name: "agentgate_agent_evictions_total", help: "Tunnels closed by the server, by reason.", labelNames: ["reason"], registers: [this.registry] });
  readonly pubsubErrors = new Counter({ name: "agentgate_pubsub_errors_total", help: "Failed event publishes.", registers: [this.registry] });
  readonly yamuxProtocolErrors = new Counter({ name: "agentgate_yamux_protocol_errors_total", help: "yamux sessions ended by a protocol error from the agent.", registers: [this.registry] });
  private readonly batchers: BatcherGauges[] = [];

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    const batchers = this.batchers;
    new Gauge({
      name: "agentgate_batcher_queue_depth",
      help: "Items waiting in a batcher.",
      labelNames: ["batcher"],
      registers: [this.registry],
      collect() {
        for (const b of batchers) this.set({ batcher: b.name }, b.queued);
      },
    });
    new Gauge({
      name: "agentgate_batcher_dropped",
      help: "Items a batcher dropped because its queue was full (a counter read from the batcher).",
      labelNames: ["batcher"],
      registers: [this.registry],
      collect() {
        for (const b of batchers) this.set({ batcher: b.name }, b.dropped);
      },
    });
    new Gauge({
      name: "agentgate_batcher_flush_errors",
      help: "Failed batcher flushes (a counter read from the batcher).",
      labelNames: ["batcher"],
      registers: [this.registry],
      collect() {
        for (const b of batchers) this.set({ batcher: b.name }, b.flushErrors);
      },
    });
  }

  /** Exports a batcher's queue depth, drops and flush errors. */
  watchBatcher(batcher: BatcherGauges): void {
    this.batchers.push(batcher);
  }
}
