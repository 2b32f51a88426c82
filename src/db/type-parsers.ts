import pg from "pg";

/**
 * Type OIDs whose parsing differs between `pg` and PGlite out of the box. Both engines get the same
 * parser for each, so a row reads the same whichever engine produced it:
 * - timestamptz/timestamp (and arrays) → JS Date; PGlite's own parser reads year 0001 (Coder's "zero
 *   time" default) as 2001, pg's does not.
 * - int8 (and arrays) → JS number. pg would give strings, PGlite bigint above 2^53. The int8 columns
 *   here (log ids, stats counters, metadata interval/timeout seconds, ttl, connection_generation)
 *   stay far below 2^53; a larger value loses precision rather than failing the read.
 * - bytea → Buffer (PGlite gives Uint8Array).
 * uuid is text on both (Postgres prints it lowercase); json/jsonb are parsed by both.
 * Enum arrays (subsystems, display_apps) have run-time OIDs; queries cast them to text[].
 */
const OID = {
  bytea: 17,
  int8: 20,
  int8Array: 1016,
  timestamp: 1114,
  timestampArray: 1115,
  timestamptz: 1184,
  timestamptzArray: 1185,
} as const;

/** pg's own text parser for a type (its typings list scalar OIDs only, hence the cast). */
function builtin(oid: number): (value: string) => unknown {
  return (pg.types.getTypeParser as (oid: number, format: "text") => (value: string) => unknown)(oid, "text");
}

function parseInt8(value: string): number {
  return Number(value);
}

/** @internal Parsers keyed by type OID, built from pg's own so both engines agree. */
export function sharedTypeParsers(): Record<number, (value: string) => unknown> {
  return {
    [OID.bytea]: builtin(OID.bytea),
    [OID.int8]: parseInt8,
    [OID.int8Array]: (value: string) => parseArray(value, parseInt8),
    [OID.timestamp]: builtin(OID.timestamp),
    [OID.timestampArray]: builtin(OID.timestampArray),
    [OID.timestamptz]: builtin(OID.timestamptz),
    [OID.timestamptzArray]: builtin(OID.timestamptzArray),
  };
}

/** Parses a one-dimensional Postgres array literal of unquoted scalars, e.g. `{1,2,NULL}`. */
function parseArray<T>(value: string, item: (v: string) => T): (T | null)[] {
  const inner = value.slice(1, -1);
  if (inner === "") return [];
  return inner.split(",").map((v) => (v === "NULL" ? null : item(v)));
}

/**
 * @internal A `types` object for pg clients: the shared parsers, then pg's defaults. Passed per pool
 * rather than set on the global `pg.types`, so other users of `pg` in the process are unaffected.
 */
export function pgTypeOverrides(): { getTypeParser: (oid: number, format?: string) => unknown } {
  const parsers = sharedTypeParsers();
  return {
    getTypeParser(oid: number, format?: string) {
      if (format !== "binary" && parsers[oid] !== undefined) return parsers[oid];
      return (pg.types.getTypeParser as (oid: number, format?: string) => unknown)(oid, format);
    },
  };
}
