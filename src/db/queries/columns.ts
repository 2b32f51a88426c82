/**
 * @internal Column lists: each table's columns once, as [sql name, TS name], so SELECT lists and
 * row types can't drift apart. `selectList` aliases them to camelCase, optionally with a prefix for
 * joins that return several tables' rows side by side.
 */

export type ColumnList = readonly (readonly [sql: string, ts: string])[];

/**
 * `alias.sql_name AS "prefixTsName", …`. A column may be an expression with `@` standing for the
 * alias: enum arrays are listed as `coalesce(@.col, '{}')::text[]` so both engines return JS arrays
 * (enum array OIDs are only known at run time).
 */
export function selectList(alias: string, columns: ColumnList, prefix = ""): string {
  return columns
    .map(([sql, ts]) => {
      const expr = sql.includes("@.") ? sql.replaceAll("@.", `${alias}.`) : `${alias}.${sql}`;
      return `${expr} AS "${prefix}${ts}"`;
    })
    .join(", ");
}

/** Takes the `prefix`ed keys of a joined row back out as one object. */
export function pickPrefixed<T>(row: Record<string, unknown>, prefix: string, columns: ColumnList): T {
  const out: Record<string, unknown> = {};
  for (const [, ts] of columns) out[ts] = row[prefix + ts];
  return out as T;
}

/**
 * @internal A timestamp parameter inside an array, as ISO 8601 text. pg formats each Date of an
 * array parameter in local time with string padding, which costs more than the UPDATE itself for
 * 10,000-row batches; Postgres reads the ISO form directly.
 */
export function isoOrNull(d: Date | null): string | null {
  return d === null ? null : d.toISOString();
}
