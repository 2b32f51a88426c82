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

/**
 * An error in the statement's data (SQLSTATE class 22, data exception, or 23, integrity
 * constraint violation): the same statement would fail the same way, so retrying it is pointless.
 */
export function isDataError(err: unknown): boolean {
  const state = sqlState(err);
  return state !== undefined && (state.startsWith("22") || state.startsWith("23"));
}
