/** What the scaletest reads from a server's Prometheus /metrics. */
export interface ScrapedMetrics {
  cpuSeconds: number;
  rssBytes: number;
  /** agentgate_rpcs_total summed by code. */
  rpcsByCode: Record<string, number>;
}

/** Reads `url`/metrics; undefined when it cannot be read (the report then says so). */
export async function scrapeMetrics(url: string, timeoutMs = 10_000): Promise<ScrapedMetrics | undefined> {
  try {
    const res = await fetch(new URL("/metrics", url), { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return undefined;
    return parseMetrics(await res.text());
  } catch {
    return undefined;
  }
}

/** The few series the report needs, from Prometheus text format. */
export function parseMetrics(text: string): ScrapedMetrics {
  const out: ScrapedMetrics = { cpuSeconds: 0, rssBytes: 0, rpcsByCode: {} };
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line === "") continue;
    const space = line.lastIndexOf(" ");
    const series = line.slice(0, space);
    const value = Number(line.slice(space + 1));
    if (!Number.isFinite(value)) continue;
    if (series === "process_cpu_seconds_total") out.cpuSeconds = value;
    else if (series === "process_resident_memory_bytes") out.rssBytes = value;
    else if (series.startsWith("agentgate_rpcs_total{")) {
      const code = /code="([^"]*)"/.exec(series)?.[1] ?? "unknown";
      out.rpcsByCode[code] = (out.rpcsByCode[code] ?? 0) + value;
    }
  }
  return out;
}

/** `after` minus `before` for counters; RSS as it is after. */
export function metricsDelta(before: ScrapedMetrics, after: ScrapedMetrics): ScrapedMetrics {
  const rpcsByCode: Record<string, number> = {};
  for (const [code, n] of Object.entries(after.rpcsByCode)) {
    const d = n - (before.rpcsByCode[code] ?? 0);
    if (d !== 0) rpcsByCode[code] = d;
  }
  return { cpuSeconds: after.cpuSeconds - before.cpuSeconds, rssBytes: after.rssBytes, rpcsByCode };
}
