/**
 * `fn` as a periodic tick that is skipped while its previous run is still going: a report that
 * waits for the tunnel (the server is away) is not joined by one more every interval.
 */
export function oneAtATime(fn: () => Promise<void>): () => Promise<void> {
  let busy = false;
  return async () => {
    if (busy) return;
    busy = true;
    try {
      await fn();
    } finally {
      busy = false;
    }
  };
}
