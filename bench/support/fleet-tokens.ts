/**
 * The agents of a fleet benchmark: N agents provisioned through the control API of a server
 * started for that alone on a database of their own, or, with a kept database, the tokens
 * provisioned by a run before (provisioning 20,000 takes minutes).
 */
import { readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type pg from "pg";
import { createControlClient } from "../../src/cli/control-client.js";
import { provision } from "../../src/cli/scaletest.js";
import { startServe } from "./serve-process.js";

export interface FleetDatabase {
  /** A connection to the PostgreSQL server that holds the database. */
  admin: pg.Client;
  dbName: string;
  dbUrl: string;
  /** Keep the database and its tokens for the next run with the same name and N. */
  keep: boolean;
  workers: number;
  adminToken: string;
}

/** The tokens of `n` agents on the database, provisioned now unless a kept run left them. */
export async function fleetTokens(db: FleetDatabase, n: number): Promise<string[]> {
  const keptTokens = join(tmpdir(), `${db.dbName}-${n}.tokens`);
  if (db.keep) {
    const kept = await readFile(keptTokens, "utf8").catch(() => undefined);
    if (kept !== undefined) return kept.trim().split("\n");
    await db.admin.query(`DROP DATABASE IF EXISTS ${db.dbName} WITH (FORCE)`);
  }
  await db.admin.query(`CREATE DATABASE ${db.dbName}`);
  console.error(`provisioning ${n} agents on ${db.dbName} ...`);
  const server = await startServe({ workers: db.workers, databaseUrl: db.dbUrl, adminToken: db.adminToken });
  try {
    const control = createControlClient({ url: server.url, adminToken: db.adminToken });
    const tokens = await provision(control, "fleet", n, 2, 10_000, [], () => undefined);
    if (db.keep) await writeFile(keptTokens, tokens.join("\n") + "\n");
    return tokens;
  } finally {
    await server.stop();
  }
}
