/** Awaiting what a server stream sends. */

/**
 * Reads `stream` until a message matches, and resolves with it; rejects when the stream ends
 * first or nothing matches within `timeoutMs`. Messages before the match are skipped.
 */
export async function nextMatching<T>(stream: AsyncIterator<T>, match: (message: T) => boolean, timeoutMs = 10_000, what = "a matching message"): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    for (;;) {
      const r = await Promise.race([stream.next(), timeout]);
      if (r.done) throw new Error(`the stream ended before ${what}`);
      if (match(r.value)) return r.value;
    }
  } finally {
    clearTimeout(timer);
  }
}
