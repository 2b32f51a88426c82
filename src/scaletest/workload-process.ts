/**
 * One scaletest load process (forked by `agentgate scaletest`): holds one tunnel per token it is
 * given and runs Coder's steady agent workload on each (GetManifest per connection, UpdateStats
 * and BatchUpdateMetadata on timers at random phases), reporting counts and latencies to the
 * parent over IPC. Several of these share a fleet so that the generator is not the bottleneck.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Agent } from "../../gen/coder/agent/v2/agent_pb.js";
import { backoffDelay, DEFAULT_BACKOFF } from "../backoff.js";
import { retryAfterDelay, SDK_API_VERSION } from "../client/agent-connection.js";
import { dialTunnel, DialRefusedError, type Tunnel } from "../client/dial.js";
import { tunnelTransport } from "../client/tunnel-transport.js";
import { createDrpcClient } from "../rpc/drpc-client.js";
import { LatencyHistogram, type HistogramCounts } from "./histogram.js";

/** What the parent sends to start a load process. */
export interface WorkloadStart {
  type: "start";
  url: string;
  tokens: string[];
  protocol: "connect" | "grpc" | "drpc";
  statsIntervalMs: number;
  metadataIntervalMs: number;
  metadataKeys: number;
  /** New tunnels per second, this process's share of --ramp. */
  rampPerSecond: number;
  reportIntervalMs: number;
}

/** Counts since the process started, and the latencies of the last interval. */
export interface WorkloadProgress {
  type: "progress" | "final";
  /** Agents with a tunnel up now. */
  connected: number;
  /** Agents that have had a tunnel and their manifest at least once. */
  everConnected: number;
  dialFailures: number;
  /** Tunnels that ended while the test ran (not at its end). */
  drops: number;
  /** Dials refused with 503 and Retry-After. */
  retryAfters: number;
  /** RPCs that failed because their tunnel went away (GoAway or closed) meanwhile: part of a drop, not errors. */
  lostWithTunnel: number;
  rpcs: number;
  errors: Record<string, number>;
  /** Latencies of RPCs that ended in the last interval. */
  interval: { counts: HistogramCounts; max: number };
  /** On "final": every RPC's latency, and those after all of this process's agents were first connected. */
  all?: { counts: HistogramCounts; max: number };
  steady?: { counts: HistogramCounts; max: number };
  /** This process's CPU time (µs) and RSS (bytes). */
  cpuMicros: number;
  rssBytes: number;
}

/** Each RPC gets this long before it counts as failed. */
const RPC_TIMEOUT_MS = 30_000;
/** At the end, calls in flight get this long to finish (and be counted) before the tunnels close. */
const DRAIN_MS = 10_000;
/** hashicorp/yamux's keepalive, as a Coder agent uses. */
const KEEPALIVE_MS = 30_000;

type AgentCalls = {
  getManifest(): Promise<unknown>;
  updateStats(): Promise<unknown>;
  batchUpdateMetadata(): Promise<unknown>;
};

class LoadState {
  connected = 0;
  everConnected = 0;
  dialFailures = 0;
  drops = 0;
  retryAfters = 0;
  lostWithTunnel = 0;
  rpcs = 0;
  errors: Record<string, number> = {};
  readonly interval = new LatencyHistogram();
  readonly all = new LatencyHistogram();
  readonly steady = new LatencyHistogram();
  steadySince: number | undefined;
  stopping = false;
}

function callsFor(tunnel: Tunnel, start: WorkloadStart): AgentCalls {
  const keys = Array.from({ length: start.metadataKeys }, (_, i) => `k${i}`);
  const stats = () => ({ stats: { connectionCount: 1n, rxBytes: 1024n, txBytes: 2048n, rxPackets: 8n, txPackets: 8n } });
  const metadata = () => ({ metadata: keys.map((key) => ({ key, result: { collectedAt: timestampFromMs(Date.now()), age: 0n, value: String(Math.random()), error: "" } })) });
  if (start.protocol === "drpc") {
    const client = createDrpcClient(Agent, tunnel.session);
    const opts = () => ({ signal: AbortSignal.timeout(RPC_TIMEOUT_MS) });
    return {
      getManifest: () => client.getManifest({}, opts()),
      updateStats: () => client.updateStats(stats(), opts()),
      batchUpdateMetadata: () => client.batchUpdateMetadata(metadata(), opts()),
    };
  }
  const transport = tunnelTransport(tunnel, start.protocol);
  const client = createClient(Agent, transport);
  const opts = { timeoutMs: RPC_TIMEOUT_MS };
  return {
    getManifest: () => client.getManifest({}, opts),
    updateStats: () => client.updateStats(stats(), opts),
    batchUpdateMetadata: () => client.batchUpdateMetadata(metadata(), opts),
  };
}

/** One simulated agent: dials, re-dials (backoff, or Retry-After with jitter), runs the workload while up. */
class SimulatedAgent {
  private tunnel: Tunnel | undefined;
  private calls: AgentCalls | undefined;
  private timers: NodeJS.Timeout[] = [];
  private everConnected = false;
  /** Calls not yet settled: the end of a run waits for them, so none is lost from the counts. */
  private readonly inFlight = new Set<Promise<void>>();
  private readonly closing = new AbortController();

  constructor(
    private readonly token: string,
    private readonly start: WorkloadStart,
    private readonly state: LoadState,
    private readonly total: number,
  ) {}

  async run(): Promise<void> {
    const { state, start } = this;
    const signal = this.closing.signal;
    let attempt = 0;
    // Random phases: a fleet's timers spread over the interval, as real agents' do.
    this.every(start.statsIntervalMs, () => this.calls?.updateStats());
    this.every(start.metadataIntervalMs, () => this.calls?.batchUpdateMetadata());
    while (!signal.aborted) {
      let tunnel: Tunnel;
      try {
        tunnel = await dialTunnel({ url: new URL(start.url), token: this.token, version: SDK_API_VERSION, keepaliveIntervalMs: KEEPALIVE_MS, signal });
      } catch (err) {
        if (signal.aborted) return;
        state.dialFailures++;
        if (err instanceof DialRefusedError && err.final) return;
        const retryAfter = err instanceof DialRefusedError ? err.retryAfterMs : undefined;
        if (retryAfter !== undefined) state.retryAfters++;
        await sleep(retryAfter === undefined ? backoffDelay(attempt++, DEFAULT_BACKOFF) : retryAfterDelay(retryAfter), undefined, { signal }).catch(() => undefined);
        continue;
      }
      attempt = 0;
      const closed = new Promise<void>((resolve) => tunnel.session.once("close", resolve));
      this.tunnel = tunnel;
      this.calls = callsFor(tunnel, start);
      state.connected++;
      // An agent's first call; it counts as arrived (the steady window waits for every agent)
      // once its manifest is answered.
      const manifest = this.timed(() => this.calls!.getManifest());
      if (!this.everConnected) {
        void manifest.then(() => {
          if (this.everConnected) return;
          this.everConnected = true;
          if (++state.everConnected === this.total) state.steadySince = performance.now();
        });
      }
      await closed;
      state.connected--;
      this.tunnel = undefined;
      this.calls = undefined;
      tunnel.ws.terminate();
      if (signal.aborted || state.stopping) return;
      state.drops++;
      await sleep(backoffDelay(attempt++, DEFAULT_BACKOFF), undefined, { signal }).catch(() => undefined);
    }
  }

  /** Ends the agent: no new calls, those in flight finish (up to DRAIN_MS), then the tunnel closes. */
  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    if (this.inFlight.size > 0) await Promise.race([Promise.all(this.inFlight), sleep(DRAIN_MS)]);
    this.closing.abort();
    const tunnel = this.tunnel;
    if (tunnel !== undefined) {
      tunnel.session.destroy();
      tunnel.ws.close(1000);
    }
  }

  private every(intervalMs: number, call: () => Promise<unknown> | undefined): void {
    const tick = () => {
      if (this.calls !== undefined) void this.timed(call as () => Promise<unknown>);
    };
    const first = setTimeout(() => {
      tick();
      this.timers.push(setInterval(tick, intervalMs));
    }, Math.random() * intervalMs);
    this.timers.push(first);
  }

  private timed(call: () => Promise<unknown>): Promise<void> {
    const done = this.measure(call);
    this.inFlight.add(done);
    void done.finally(() => this.inFlight.delete(done));
    return done;
  }

  private async measure(call: () => Promise<unknown>): Promise<void> {
    const { state } = this;
    const tunnel = this.tunnel;
    const began = performance.now();
    let code = "ok";
    try {
      await call();
    } catch (err) {
      if (this.closing.signal.aborted) return;
      // A call its tunnel took down with it (the server drained or the link broke) is part of
      // that drop, counted apart: the drop itself is what fails a run, or what a storm expects.
      if (tunnel !== undefined && tunnel.session.goneAway) {
        state.lostWithTunnel++;
        return;
      }
      code = Code[ConnectError.from(err).code] ?? "unknown";
    }
    const ms = performance.now() - began;
    state.rpcs++;
    if (code !== "ok") state.errors[code] = (state.errors[code] ?? 0) + 1;
    state.interval.record(ms);
    state.all.record(ms);
    if (state.steadySince !== undefined && began >= state.steadySince) state.steady.record(ms);
  }
}

function progress(state: LoadState, type: "progress" | "final", started: NodeJS.CpuUsage): WorkloadProgress {
  const cpu = process.cpuUsage(started);
  return {
    type,
    connected: state.connected,
    everConnected: state.everConnected,
    dialFailures: state.dialFailures,
    drops: state.drops,
    retryAfters: state.retryAfters,
    lostWithTunnel: state.lostWithTunnel,
    rpcs: state.rpcs,
    errors: { ...state.errors },
    interval: state.interval.snapshot(true),
    ...(type === "final" ? { all: state.all.snapshot(), steady: state.steady.snapshot() } : {}),
    cpuMicros: cpu.user + cpu.system,
    rssBytes: process.memoryUsage.rss(),
  };
}

async function runLoad(start: WorkloadStart, send: (m: WorkloadProgress) => void, stopped: Promise<void>): Promise<void> {
  const cpuStart = process.cpuUsage();
  const state = new LoadState();
  const agents = start.tokens.map((token) => new SimulatedAgent(token, start, state, start.tokens.length));
  const runs: Promise<void>[] = [];
  const reporter = setInterval(() => send(progress(state, "progress", cpuStart)), start.reportIntervalMs);
  let ramping = true;
  void stopped.then(() => (ramping = false));
  // The ramp: agent i dials at i / rate seconds, in 10 ms slices.
  const began = performance.now();
  for (let i = 0; i < agents.length && ramping; ) {
    const due = Math.min(agents.length, Math.floor(((performance.now() - began) / 1000) * start.rampPerSecond) + 1);
    for (; i < due; i++) runs.push(agents[i]!.run());
    if (i < agents.length) await sleep(10);
  }
  await stopped;
  state.stopping = true;
  clearInterval(reporter);
  await Promise.all(agents.map((a) => a.stop()));
  await Promise.all(runs);
  send(progress(state, "final", cpuStart));
}

// Entry point when forked: wait for "start", run until "stop" (or the parent goes away).
if (process.send !== undefined) {
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  process.on("message", (message: WorkloadStart | { type: "stop" }) => {
    if (message.type === "stop") stop();
    if (message.type === "start") {
      const send = (m: WorkloadProgress) => {
        if (process.connected) process.send!(m);
      };
      void runLoad(message, send, stopped).then(
        () => {
          if (process.connected) process.disconnect();
        },
        (err: unknown) => {
          process.stderr.write(`scaletest load process failed: ${(err as Error).stack ?? String(err)}\n`);
          process.exit(1);
        },
      );
    }
  });
  process.once("disconnect", stop);
}
