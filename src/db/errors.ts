/**
 * Recognising Postgres errors by SQLSTATE. Both engines throw errors carrying `code` (and
 * `constraint` where the server names one), so callers can branch without parsing messages.
 */

/** The SQLSTATE of a database error, or undefined for anything else. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

function constraintOf(err: unknown): string | undefined {
  const c = (err as { constraint?: unknown } | null)?.constraint;
  return typeof c === "string" ? c : undefined;
}

/** A unique violation (23505), optionally of the named constraint or index. */
export function isUniqueViolation(err: unknown, constraint?: string): boolean {
  return sqlState(err) === "23505" && (constraint === undefined || constraintOf(err) === constraint);
}

/** A CHECK violation (23514), optionally of the named constraint. */
export function isCheckViolation(err: unknown, constraint?: string): boolean {
  return sqlState(err) === "23514" && (constraint === undefined || constraintOf(err) === constraint);
}

/** A foreign-key violation (23503). */
export function isForeignKeyViolation(err: unknown): boolean {
  return sqlState(err) === "23503";
}

/** SQLSTATEs of a database that cannot serve: connection exceptions (class 08), shutdowns, no slots. */
const UNAVAILABLE_STATES = new Set(["57P01", "57P02", "57P03", "53300", "53400"]);
/** Socket errors of a database that cannot be reached. */
const UNREACHABLE_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH", "EPIPE", "EAI_AGAIN"]);
/** What pg and PGlite say when there is no connection to run a statement on. */
const UNAVAILABLE_MESSAGE =
  /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Cannot use a pool after calling end|PGlite is clos(ed|ing)|Connection refused/i;

/**
 * Whether `err` says the database could not be reached or is shutting down, rather than that a
 * statement failed: what callers answer with Unavailable (and never show: its text names the
 * database's address).
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  // FATAL ends the session: a refused login (role locked out, database closed to connections) or a shutdown.
  if ((err as { severity?: unknown } | null)?.severity === "FATAL") return true;
  const state = sqlState(err);
  if (state !== undefined) return state.startsWith("08") || UNAVAILABLE_STATES.has(state);
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string" && UNREACHABLE_CODES.has(code)) return true;
  if (err instanceof AggregateError) return err.errors.some(isDatabaseUnavailable);
  return err instanceof Error && UNAVAILABLE_MESSAGE.test(err.message);
}

/**
 * An error in the statement's data (SQLSTATE class 22, data exception, or 23, integrity
 * constraint violation): the same statement would fail the same way, so retrying it is pointless.
 */
export function isDataError(err: unknown): boolean {
  const state = sqlState(err);
  return state !== undefined && (state.startsWith("22") || state.startsWith("23"));
}
