import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { DROP_REASONS, type ObservedBatcher } from "../db/batcher.js";
import type { CoordinatorCounters } from "../tailnet/coordinator.js";

/** RPC latency buckets: from a cached answer (sub-millisecond) to a slow database (seconds). */
const RPC_SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * The server's Prometheus metrics, on a registry of their own so several servers in one process
 * (tests, benchmarks) don't collide. Every label takes its values from a fixed set (the README's
 * metrics table lists them), never from free text.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  /** What /metrics answers: this registry's text, or in a worker of `serve --workers` the whole pool's. */
  text: () => Promise<string> = () => this.registry.metrics();
  readonly connectedAgents = new Gauge({ name: "agentgate_agents_connected", help: "Agents with an open tunnel on this replica.", registers: [this.registry] });
  readonly upgrades = new Counter({
    name: "agentgate_agent_upgrades_total",
    help: "Requests on the agent route, by result (upgraded, refused, failed) and the HTTP status answered.",
    labelNames: ["result", "status"],
    registers: [this.registry],
  });
  readonly connectedClients = new Gauge({
    name: "agentgate_clients_connected",
    help: "Clients with an open tunnel on the coordination route of this replica.",
    registers: [this.registry],
  });
  readonly clientUpgrades = new Counter({
    name: "agentgate_client_upgrades_total",
    help: "Requests on the client coordination route, by result (upgraded, refused, failed) and the HTTP status answered.",
    labelNames: ["result", "status"],
    registers: [this.registry],
  });
  readonly rpcs = new Counter({
    name: "agentgate_rpcs_total",
    help: "RPCs served, by service, method and Connect code.",
    labelNames: ["service", "method", "code"],
    registers: [this.registry],
  });
  readonly rpcSeconds = new Histogram({
    name: "agentgate_rpc_duration_seconds",
    help: "RPC latency in the server, by method.",
    labelNames: ["method"],
    buckets: RPC_SECONDS_BUCKETS,
    registers: [this.registry],
  });
  readonly pings = new Counter({ name: "agentgate_agent_pings_total", help: "WebSocket pings sent to agents.", registers: [this.registry] });
  readonly pingTimeouts = new Counter({ name: "agentgate_agent_ping_timeouts_total", help: "Agents disconnected for not answering pings.", registers: [this.registry] });
  readonly evictions = new Counter({
    name: "agentgate_agent_evictions_total",
    help: "Tunnels the server closed, by reason (ping_timeout, connection_write_failed, and when its identity ended: agent_deleted, token_revoked, build_outdated).",
    labelNames: ["reason"],
    registers: [this.registry],
  });
  readonly disconnects = new Counter({
    name: "agentgate_agent_disconnects_total",
    help: "Tunnels ended, by reason (an eviction's, or agent_closed, connection_lost, protocol_error, unsupported_data, message_too_big, server_shutdown).",
    labelNames: ["reason"],
    registers: [this.registry],
  });
  readonly pubsubErrors = new Counter({ name: "agentgate_pubsub_errors_total", help: "Failed event publishes.", registers: [this.registry] });
  readonly yamuxProtocolErrors = new Counter({
    name: "agentgate_yamux_protocol_errors_total",
    help: "Tunnels ended because the agent broke the yamux protocol.",
    registers: [this.registry],
  });
  readonly requestsRefused = new Counter({
    name: "agentgate_requests_refused_total",
    help: "Requests refused before or while their body came in, by reason (unauthenticated, body_idle, connection_bytes, agent_bytes, process_bytes, header_timeout).",
    labelNames: ["reason"],
    registers: [this.registry],
  });
  readonly connectionsRefused = new Counter({
    name: "agentgate_connections_refused_total",
    help: "TCP connections closed on arrival, by reason (total, per_address, reserve).",
    labelNames: ["reason"],
    registers: [this.registry],
  });
  readonly overloadRefusals = new Counter({
    name: "agentgate_overload_refusals_total",
    help: "Agent dials answered 503 because the process was saturated, by reason (event_loop_lag, pending_dials, queue_timeout).",
    labelNames: ["reason"],
    registers: [this.registry],
  });
  private readonly batchers: ObservedBatcher[] = [];
  private coordinator: (() => CoordinatorCounters) | undefined;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    const batchers = this.batchers;
    new Gauge({
      name: "agentgate_batcher_queue_depth",
      help: "Items waiting in a batcher.",
      labelNames: ["batcher"],
      registers: [this.registry],
      collect() {
        for (const b of batchers) this.set({ batcher: b.name }, b.counters().queued);
      },
    });
    // Cumulative numbers the batchers keep; a scrape copies them into counters.
    const counterOf = (name: string, help: string, read: (b: ObservedBatcher) => number) =>
      new Counter({
        name,
        help,
        labelNames: ["batcher"],
        registers: [this.registry],
        collect() {
          this.reset();
          for (const b of batchers) this.inc({ batcher: b.name }, read(b));
        },
      });
    new Counter({
      name: "agentgate_batcher_dropped_total",
      help: "Items a batcher dropped, by reason: queue_full, group_full (one agent's share of the queue), closed, retries_exhausted (failed flushes), close_timeout.",
      labelNames: ["batcher", "reason"],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const b of batchers) {
          const by = b.counters().droppedBy;
          for (const reason of DROP_REASONS) this.inc({ batcher: b.name, reason }, by[reason]);
        }
      },
    });
    counterOf("agentgate_batcher_flush_errors_total", "Batcher flushes that failed (their items are retried with backoff, then dropped).", (b) => b.counters().flushErrors);
    this.registerCoordinatorMetrics();
  }

  /** Exports the tailnet coordinator's counters: read at each scrape. */
  watchCoordinator(counters: () => CoordinatorCounters): void {
    this.coordinator = counters;
  }

  private registerCoordinatorMetrics(): void {
    const read = () => this.coordinator?.();
    const registers = [this.registry];
    new Gauge({
      name: "agentgate_tailnet_peers",
      help: "Coordinate streams on this replica, by kind (agent, client).",
      labelNames: ["kind"],
      registers,
      collect() {
        const c = read();
        this.set({ kind: "agent" }, c?.peers.agent ?? 0);
        this.set({ kind: "client" }, c?.peers.client ?? 0);
      },
    });
    const gauge = (name: string, help: string, value: (c: CoordinatorCounters) => number, aggregator: "sum" | "max" = "sum") =>
      new Gauge({
        name,
        help,
        registers,
        // How `serve --workers` merges the workers' values: replicas seen is one count, not one per worker.
        aggregator,
        collect() {
          const c = read();
          this.set(c === undefined ? 0 : value(c));
        },
      });
    const counter = (name: string, help: string, value: (c: CoordinatorCounters) => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          const c = read();
          this.reset();
          if (c !== undefined) this.inc(value(c));
        },
      });
    gauge("agentgate_tailnet_tunnels", "Tunnels whose source is a peer on this replica.", (c) => c.tunnels);
    gauge("agentgate_tailnet_replicas", "Coordinator replicas alive, this one included.", (c) => c.replicasSeen, "max");
    counter("agentgate_tailnet_node_updates_sent_total", "NODE updates queued to peers of this replica.", (c) => c.nodeUpdatesSent);
    counter("agentgate_tailnet_peers_dropped_total", "Peers removed because their response queue was full.", (c) => c.peersDroppedFullQueue);
    counter("agentgate_tailnet_heartbeat_failures_total", "Failed heartbeat writes of this replica.", (c) => c.heartbeatFailures);
  }

  /**
   * Counts one RPC a protocol binding served (the RPC core's observer): the same
   * `agentgate_rpcs_total` and `agentgate_rpc_duration_seconds` series Connect's calls go to.
   * `code` is undefined for success.
   */
  observeRpc(service: DescService, method: DescMethod, code: Code | undefined, durationSeconds: number): void {
    this.rpcs.inc({ service: service.typeName, method: method.name, code: code === undefined ? "ok" : (Code[code] ?? "unknown") });
    this.rpcSeconds.observe({ method: method.name }, durationSeconds);
  }

  /** Exports a batcher's queue depth, drops and flush errors. */
  watchBatcher(batcher: ObservedBatcher): void {
    this.batchers.push(batcher);
  }
}
