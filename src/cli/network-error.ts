/** What a failed connection's errno means, in words for a one-line error. */
const REASONS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host lookup failed",
  ETIMEDOUT: "timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
};

/**
 * Why a connection failed ("connection refused"), when `err` (or its cause, or the first error of
 * an AggregateError, as Node's dual-stack connect throws) carries a known errno; else undefined.
 */
export function networkFailure(err: unknown): string | undefined {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const code = (e as NodeJS.ErrnoException).code ?? ((e as AggregateError).errors?.[0] as NodeJS.ErrnoException | undefined)?.code;
    if (code !== undefined && REASONS[code] !== undefined) return REASONS[code];
  }
  return undefined;
}
