import cluster from "node:cluster";
import { AggregatorRegistry, type Registry } from "prom-client";

/** A worker asks the primary for the pool's metrics; the primary answers with their text. */
const REQUEST = "agentgate:pool-metrics-request";
const RESPONSE = "agentgate:pool-metrics-response";
/** How long a worker's /metrics waits for the primary (which gives each worker 5 s to answer). */
const POOL_METRICS_TIMEOUT_MS = 10_000;

interface PoolMetricsRequest {
  type: typeof REQUEST;
  id: number;
}

interface PoolMetricsResponse {
  type: typeof RESPONSE;
  id: number;
  text?: string;
  error?: string;
}

/**
 * In the primary of `serve --workers`: answers a worker's request for the metrics of the whole
 * pool, collected from every worker and merged by prom-client's AggregatorRegistry (counters,
 * histograms and most gauges summed; the default process and Node metrics as prom-client
 * aggregates them). A scrape that lands on any worker thus sees every worker's agents and RPCs.
 */
export function answerPoolMetrics(): void {
  // Constructing it installs prom-client's half of the exchange with the workers.
  const aggregator = new AggregatorRegistry();
  cluster.on("message", (worker, message: PoolMetricsRequest) => {
    if (message?.type !== REQUEST) return;
    const reply = (response: Omit<PoolMetricsResponse, "type" | "id">) => {
      if (worker.isConnected()) worker.send({ type: RESPONSE, id: message.id, ...response } satisfies PoolMetricsResponse);
    };
    aggregator.clusterMetrics().then(
      (text) => reply({ text }),
      (err: unknown) => reply({ error: err instanceof Error ? err.message : String(err) }),
    );
  });
}

/**
 * In a worker of `serve --workers`: offers `registry` to the primary's collection and returns
 * what /metrics should answer, the pool's metrics fetched from the primary.
 */
export function poolMetricsOf(registry: Registry): () => Promise<string> {
  AggregatorRegistry.setRegistries([registry]);
  // Installs prom-client's worker half: it answers the primary's collection requests.
  new AggregatorRegistry();
  let nextId = 0;
  const waiting = new Map<number, { resolve(text: string): void; reject(err: Error): void; timer: NodeJS.Timeout }>();
  process.on("message", (message: PoolMetricsResponse) => {
    if (message?.type !== RESPONSE) return;
    const request = waiting.get(message.id);
    if (request === undefined) return;
    waiting.delete(message.id);
    clearTimeout(request.timer);
    if (message.text !== undefined) request.resolve(message.text);
    else request.reject(new Error(`the primary could not collect the workers' metrics: ${message.error ?? "no answer"}`));
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      if (!process.connected || process.send === undefined) return reject(new Error("the primary is gone"));
      const id = nextId++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error(`the primary did not answer with the workers' metrics within ${POOL_METRICS_TIMEOUT_MS / 1000} s`));
      }, POOL_METRICS_TIMEOUT_MS);
      waiting.set(id, { resolve, reject, timer });
      process.send({ type: REQUEST, id } satisfies PoolMetricsRequest);
    });
}
