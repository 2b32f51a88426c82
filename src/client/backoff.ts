/** Reconnect delays: exponential from `initialMs` to `maxMs` (agent-api.md §5: 100 ms → 10 s). */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 100, maxMs: 10_000 };

/**
 * The delay before retry number `attempt` (0-based), with full jitter: uniform in
 * [0, min(max, initial × 2^attempt)], so a fleet that lost its server together does not
 * return in lockstep.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const ceiling = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}
