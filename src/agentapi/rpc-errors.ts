import { Code, ConnectError } from "@connectrpc/connect";
import { isDatabaseUnavailable } from "../db/errors.js";

/** What a caller is told when the database can't be reached: never the driver's text, which names its address. */
export const DATABASE_UNAVAILABLE_MESSAGE = "database unavailable, try again later";

/**
 * A database (or other unexpected) failure, with what was being done: Unavailable with a generic
 * message when the database can't be reached, else Internal "fetching …: <cause>".
 */
export function internal(what: string, err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (isDatabaseUnavailable(err)) return databaseUnavailable(err);
  return new ConnectError(`${what}: ${err instanceof Error ? err.message : String(err)}`, Code.Internal, undefined, undefined, err);
}

/** Unavailable (14) for a database that can't be reached; the cause stays on the error for logs only. */
export function databaseUnavailable(cause?: unknown): ConnectError {
  return new ConnectError(DATABASE_UNAVAILABLE_MESSAGE, Code.Unavailable, undefined, undefined, cause);
}

/** A request that fails validation. */
export function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}
