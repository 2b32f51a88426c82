import { Code, ConnectError } from "@connectrpc/connect";

/** A database (or other unexpected) failure as Internal, with what was being done: "fetching …: <cause>". */
export function internal(what: string, err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  return new ConnectError(`${what}: ${err instanceof Error ? err.message : String(err)}`, Code.Internal, undefined, undefined, err);
}

/** A request that fails validation. */
export function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}
