import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "../log.js";
import { silentLogger } from "../log.js";
import type { Database } from "./database.js";

/**
 * Advisory lock key held while a migration runs, so processes starting together apply each
 * migration once. Arbitrary but fixed: every agentgate version must use the same one.
 */
const MIGRATION_LOCK_KEY = "7238416011289310401";
const FILE_PATTERN = /^(\d{4})_[a-z0-9_]+\.sql$/;

/** One migration file. */
export interface Migration {
  /** The file name without `.sql`, e.g. `0001_init`; recorded in `schema_migrations.version`. */
  version: string;
  sql: string;
}

/**
 * The migrations folder. The `.sql` files are not compiled, so from `dist/src/db` this looks in the
 * package's `src/db/migrations` instead of next to the module.
 */
export function migrationsDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const beside = join(here, "migrations");
  if (existsSync(beside)) return beside;
  return join(here, "..", "..", "..", "src", "db", "migrations");
}

/** Reads `NNNN_name.sql` files in order; any other file name is an error, so a typo can't be skipped silently. */
export async function loadMigrations(dir = migrationsDir()): Promise<Migration[]> {
  const names = (await readdir(dir)).filter((n) => n.endsWith(".sql")).sort();
  const seen = new Set<string>();
  const out: Migration[] = [];
  for (const name of names) {
    const m = FILE_PATTERN.exec(name);
    if (m === null) throw new Error(`migration ${name}: want NNNN_lower_snake.sql`);
    if (seen.has(m[1]!)) throw new Error(`migration ${name}: number ${m[1]} used twice`);
    seen.add(m[1]!);
    out.push({ version: name.slice(0, -4), sql: await readFile(join(dir, name), "utf8") });
  }
  return out;
}

/**
 * Applies every migration not yet recorded in `schema_migrations`, in order, each in its own
 * transaction under a transaction-scoped advisory lock. Safe to run from several processes at once.
 */
export async function migrate(
  db: Database,
  opts: { migrations?: Migration[]; logger?: Logger } = {},
): Promise<{ applied: string[] }> {
  const logger = opts.logger ?? silentLogger();
  const migrations = opts.migrations ?? (await loadMigrations());
  const applied: string[] = [];
  for (const m of migrations) {
    const done = await db.transaction(async (tx) => {
      await tx.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
      await tx.exec(
        `CREATE TABLE IF NOT EXISTS schema_migrations (
           version text PRIMARY KEY,
           applied_at timestamptz NOT NULL DEFAULT now()
         )`,
      );
      const { rowCount } = await tx.query("SELECT 1 FROM schema_migrations WHERE version = $1", [m.version]);
      if (rowCount > 0) return false;
      await tx.exec(m.sql);
      await tx.query("INSERT INTO schema_migrations (version) VALUES ($1)", [m.version]);
      return true;
    });
    if (done) {
      applied.push(m.version);
      logger.info({ version: m.version }, "migration applied");
    }
  }
  const known = new Set(migrations.map((m) => m.version));
  const { rows } = await db.query<{ version: string }>("SELECT version FROM schema_migrations ORDER BY version");
  const unknown = rows.filter((r) => !known.has(r.version)).map((r) => r.version);
  if (unknown.length > 0) logger.warn({ unknown }, "database has migrations this build does not know (a newer agentgate ran)");
  return { applied };
}
