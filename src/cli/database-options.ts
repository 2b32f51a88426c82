import type { Logger } from "../log.js";
import { silentLogger } from "../log.js";
import { DEFAULT_DATA_DIR, openDatabase, type Database } from "../db/database.js";
import { migrate } from "../db/migrate.js";

/**
 * The database flags every command that touches the database takes, for `util.parseArgs`:
 * spread into `options`.
 */
export const databaseOptions = {
  /** PostgreSQL URL. Default: $DATABASE_URL; when neither is set, PGlite in --data-dir. */
  "database-url": { type: "string" },
  /** PGlite's data folder when no database URL is given. Default: $AGENTGATE_DATA_DIR, else ./.agentgate. */
  "data-dir": { type: "string" },
} as const;

/** Help lines for {@link databaseOptions}, to append to a command's usage. */
export const databaseOptionsHelp = [
  "  --database-url URL   PostgreSQL URL (default: $DATABASE_URL; without one, PGlite in --data-dir)",
  `  --data-dir DIR       PGlite data folder (default: $AGENTGATE_DATA_DIR or ${DEFAULT_DATA_DIR})`,
].join("\n");

/** The parsed values of {@link databaseOptions}. */
export interface DatabaseFlagValues {
  "database-url"?: string | undefined;
  "data-dir"?: string | undefined;
}

/** Flags, then environment, then defaults: where the database is. */
export function resolveDatabaseLocation(
  values: DatabaseFlagValues,
  env: NodeJS.ProcessEnv = process.env,
): { databaseUrl?: string; dataDir: string } {
  const databaseUrl = values["database-url"] || env.DATABASE_URL || undefined;
  const dataDir = values["data-dir"] || env.AGENTGATE_DATA_DIR || DEFAULT_DATA_DIR;
  return databaseUrl === undefined ? { dataDir } : { databaseUrl, dataDir };
}

/**
 * Opens the database the flags point at and applies pending migrations: what `serve` does at
 * start and every command that reads or writes agentgate's tables.
 */
export async function openMigratedDatabase(
  values: DatabaseFlagValues,
  opts: { logger?: Logger; poolSize?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<{ db: Database; applied: string[] }> {
  const logger = opts.logger ?? silentLogger();
  const db = await openDatabase({ ...resolveDatabaseLocation(values, opts.env), logger, ...(opts.poolSize ? { poolSize: opts.poolSize } : {}) });
  try {
    const { applied } = await migrate(db, { logger });
    return { db, applied };
  } catch (err) {
    await db.close();
    throw err;
  }
}
