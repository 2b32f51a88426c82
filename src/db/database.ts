import type { Logger } from "../log.js";
import { silentLogger } from "../log.js";
import type { Pubsub } from "./pubsub.js";

/** Anything SQL can run on: the database itself or an open transaction. */
export interface Queryable {
  /**
   * Runs one statement with `$1…` parameters. Rows come back parsed the same way on both engines:
   * timestamps as Date, uuids as lowercase strings, int8 as number, bytea as Buffer, json parsed.
   * `rowCount` is the rows returned or affected.
   */
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<{ rows: R[]; rowCount: number }>;
}

/** An open transaction. Inside `transaction(fn)`, use only this, never the Database (PGlite would wait for itself). */
export interface Transaction extends Queryable {
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

/** The one handle on agentgate's state; see {@link openDatabase}. */
export interface Database extends Queryable {
  /** `pg` when a database URL was given, else `pglite`. */
  readonly engine: "pg" | "pglite";
  /** Runs `fn` in BEGIN…COMMIT; a throw rolls back and rethrows. */
  transaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T>;
  /**
   * For background work (sweeps, heartbeat writes, replica bookkeeping): on PostgreSQL a small
   * pool of its own, so a slow sweep never holds a connection an RPC waits for. PGlite has one
   * backend, so there it is the database itself.
   */
  readonly background: Queryable;
  /** LISTEN/NOTIFY pubsub on this database. */
  readonly pubsub: Pubsub;
  /** Resolves when the database answers a trivial query; for /readyz. */
  ping(): Promise<void>;
  /** Stops pubsub, then closes every connection. Idempotent. */
  close(): Promise<void>;
}

/** Options of {@link openDatabase}. */
export interface OpenDatabaseOptions {
  /** A `postgres://` URL: use PostgreSQL through a pool. Without it, PGlite in `dataDir`. */
  databaseUrl?: string;
  /** PGlite's data folder, created if missing. Default `./.agentgate`. Ignored with `databaseUrl`. */
  dataDir?: string;
  /** Default: a silent logger. */
  logger?: Logger;
  /** pg pool size (the LISTEN connection is extra). Default 10. Ignored by PGlite, which serialises queries. */
  poolSize?: number;
  /** pg: how long opening a connection may take before it fails (pool, background pool and listener). Default 5 s. */
  connectTimeoutMs?: number;
  /** Events each pubsub subscriber may have waiting before new ones are dropped. Default 2048. */
  subscriberQueue?: number;
}

/** Where PGlite keeps its files when neither `--data-dir` nor `dataDir` says otherwise. */
export const DEFAULT_DATA_DIR = "./.agentgate";

/**
 * Opens PostgreSQL (pool + one LISTEN connection) when `databaseUrl` is set, else PGlite in
 * `dataDir`. Does not migrate; call {@link migrate} (from `./migrate.js`) next.
 */
export async function openDatabase(opts: OpenDatabaseOptions = {}): Promise<Database> {
  const logger = opts.logger ?? silentLogger();
  if (opts.databaseUrl !== undefined && opts.databaseUrl !== "") {
    const { openPgDatabase } = await import("./engine-pg.js");
    return openPgDatabase({ ...opts, databaseUrl: opts.databaseUrl, logger });
  }
  // PGlite's wasm is only loaded when it is the engine in use.
  const { openPgliteDatabase } = await import("./engine-pglite.js");
  return openPgliteDatabase({ ...opts, dataDir: opts.dataDir ?? DEFAULT_DATA_DIR, logger });
}
