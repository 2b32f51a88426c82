import type { Queryable } from "./database.js";
import { loadMigrations, type Migration } from "./migrate.js";

/**
 * Migrations known to this build but not recorded as applied, in order; all of them when the
 * database was never migrated. /readyz is ready only when this is empty.
 */
export async function pendingMigrations(q: Queryable, migrations?: Migration[]): Promise<string[]> {
  const known = migrations ?? (await loadMigrations());
  const { rows: exists } = await q.query<{ present: boolean }>("SELECT to_regclass('schema_migrations') IS NOT NULL AS present");
  if (exists[0]?.present !== true) return known.map((m) => m.version);
  const { rows } = await q.query<{ version: string }>("SELECT version FROM schema_migrations");
  const applied = new Set(rows.map((r) => r.version));
  return known.filter((m) => !applied.has(m.version)).map((m) => m.version);
}
