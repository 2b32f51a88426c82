import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Logger } from "../log.js";
import { silentLogger } from "../log.js";
import { DEFAULT_DATA_DIR, openDatabase, type Database } from "../db/database.js";
import { migrate } from "../db/migrate.js";
import { networkFailure } from "./network-error.js";

/** The values of the database flags (`databaseFlags`): a PostgreSQL URL, else PGlite's folder. */
export interface DatabaseLocation {
  "database-url"?: string | undefined;
  "data-dir"?: string | undefined;
}

/** A file every PostgreSQL data folder has, PGlite's included: its absence means no database yet. */
const PG_VERSION_FILE = "PG_VERSION";
/** PostgreSQL's port when a URL names none. */
const DEFAULT_PG_PORT = "5432";

/** There is no database to read: no server on the data folder, and no PGlite database in it. */
export class NoDatabaseError extends Error {
  override name = "NoDatabaseError";
}

/**
 * Opens the database the flags point at and applies pending migrations: what `serve` and
 * `migrate` do at start, and every command that reads or writes agentgate's tables. With
 * `mustExist`, a PGlite folder without a database is an error instead of a new database: reading
 * commands say there is none rather than leave an empty one behind.
 */
export async function openMigratedDatabase(
  where: DatabaseLocation,
  opts: { logger?: Logger; poolSize?: number; mustExist?: boolean } = {},
): Promise<{ db: Database; applied: string[] }> {
  const logger = opts.logger ?? silentLogger();
  const databaseUrl = where["database-url"] || undefined;
  const dataDir = where["data-dir"] || DEFAULT_DATA_DIR;
  if (databaseUrl === undefined) {
    const fresh = !existsSync(join(dataDir, PG_VERSION_FILE));
    if (fresh && opts.mustExist) {
      throw new NoDatabaseError(
        `no database: no server runs on ${dataDir} and there is no database in it (start one with agentgate serve, or give --url or --database-url)`,
      );
    }
    // PGlite's first start runs initdb in WebAssembly: seconds of silence otherwise.
    if (fresh) logger.info({ data_dir: resolve(dataDir) }, `initialising the embedded database in ${resolve(dataDir)}, first start takes a few seconds`);
    else logger.info({ data_dir: resolve(dataDir) }, `opening the embedded database in ${resolve(dataDir)}`);
  }
  let db: Database;
  try {
    db = await openDatabase({ ...(databaseUrl === undefined ? { dataDir } : { databaseUrl }), logger, ...(opts.poolSize ? { poolSize: opts.poolSize } : {}) });
  } catch (err) {
    throw databaseUrl === undefined ? err : new Error(describeDatabaseError(err, databaseUrl), { cause: err });
  }
  try {
    const { applied } = await migrate(db, { logger });
    return { db, applied };
  } catch (err) {
    await db.close();
    throw databaseUrl === undefined ? err : new Error(describeDatabaseError(err, databaseUrl), { cause: err });
  }
}

/** "cannot reach the database at 127.0.0.1:3198 (connection refused)", naming no password. */
function describeDatabaseError(err: unknown, databaseUrl: string): string {
  const url = new URL(databaseUrl);
  const where = `${url.hostname}:${url.port || DEFAULT_PG_PORT}`;
  const failure = networkFailure(err);
  if (failure !== undefined) return `cannot reach the database at ${where} (${failure})`;
  return `the database at ${where} failed: ${(err as Error).message}`;
}

/**
 * Runs `fn` on the database the flags point at, then closes it: for commands that read or write
 * an existing database (a PGlite folder without one is a {@link NoDatabaseError}).
 */
export async function withDatabase<T>(where: DatabaseLocation, fn: (db: Database) => Promise<T>): Promise<T> {
  const { db } = await openMigratedDatabase(where, { mustExist: true });
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}
