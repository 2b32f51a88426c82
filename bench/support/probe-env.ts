/**
 * The environment of the interop kit's Go probes in the fleet benchmarks: what keeps the load
 * generator from being measured as the server.
 *
 * - PROBE_GOMAXPROCS (1): two probes scheduling on both cores of a 2-core machine took more CPU
 *   than the server.
 * - PROBE_GOGC (off) and PROBE_GOMEMLIMIT (6GiB): with Go's collector on, a probe of 5,000 agents
 *   (600 MB live) ran a collection cycle of over a second of wall time on its one core every
 *   30–60 s, and every call in flight then counted it as latency: p99 of 275–290 ms in a
 *   30-second window where the server never stalled past 200 ms; off, 76–84 ms. The limit bounds
 *   the heap (each probe grows by about a gigabyte a minute at 10,000 agents); past it Go collects.
 */
export function probeEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    GOMAXPROCS: process.env.PROBE_GOMAXPROCS ?? "1",
    GOGC: process.env.PROBE_GOGC ?? "off",
    GOMEMLIMIT: process.env.PROBE_GOMEMLIMIT ?? "6GiB",
  };
}
