import { Code, ConnectError } from "@connectrpc/connect";
import { isRefusedToken } from "./control-client.js";

/** First wait before re-opening a stream that broke (a server restart, a lost connection). */
const RETRY_FIRST_MS = 500;
/** Waits double up to this; a person watching should see a server that came back within seconds. */
const RETRY_MAX_MS = 10_000;

/** What a live stream tells the page. */
export interface LiveStreamHandlers<T> {
  /** Opens the server stream; aborting `signal` must end it. */
  open(signal: AbortSignal): AsyncIterable<T>;
  onMessage(message: T): void;
  /** "live" once a message arrived, "retrying" while waiting to re-open after `err`. */
  onState(state: "live" | "retrying", err?: unknown): void;
  /** The stream stopped for good: the token was refused, or the server says the thing is gone. */
  onStopped(err: ConnectError): void;
}

/**
 * Keeps a server stream open: each message goes to `onMessage`; when the stream breaks it is
 * re-opened after a backoff (reset by the next message). A refused token or NotFound stops it.
 * No polling: the server sends when something changed.
 */
export function liveStream<T>(handlers: LiveStreamHandlers<T>): { stop(): void } {
  const abort = new AbortController();
  void (async () => {
    let wait = RETRY_FIRST_MS;
    while (!abort.signal.aborted) {
      try {
        for await (const message of handlers.open(abort.signal)) {
          wait = RETRY_FIRST_MS;
          handlers.onState("live");
          handlers.onMessage(message);
        }
        if (abort.signal.aborted) return;
        handlers.onState("retrying", new Error("the server ended the stream"));
      } catch (err) {
        if (abort.signal.aborted) return;
        if (isRefusedToken(err) || (err instanceof ConnectError && (err.code === Code.NotFound || err.code === Code.InvalidArgument))) {
          handlers.onStopped(err);
          return;
        }
        handlers.onState("retrying", err);
      }
      await new Promise((resolve) => setTimeout(resolve, wait));
      wait = Math.min(wait * 2, RETRY_MAX_MS);
    }
  })();
  return { stop: () => abort.abort() };
}
