/** Reconnect delays: exponential from `initialMs` to `maxMs`. */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

/** Coder's agents' reconnect range, 100 ms to 10 s: what the SDK and the server's own reconnects use. */
export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 100, maxMs: 10_000 };

/** Doublings beyond this would only overflow toward Infinity: the ceiling is reached long before. */
const MAX_DOUBLINGS = 30;

/**
 * The delay before retry number `attempt` (0-based), with full jitter: uniform in
 * [0, min(max, initial × 2^attempt)], so a fleet that lost its server together does not
 * return in lockstep.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const ceiling = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(attempt, MAX_DOUBLINGS));
  return Math.floor(random() * ceiling);
}
