/**
 * The invocation is wrong: a bad flag value, environment variable or config-file key, a missing
 * argument. The CLI prints the message as one line and exits 2; the server never starts.
 */
export class UsageError extends Error {
  override name = "UsageError";
}
