import { mkdir, open, readFile, unlink } from "node:fs/promises";
import { join, resolve } from "node:path";
import { PGlite, type Transaction as PgliteTransaction } from "@electric-sql/pglite";
import type { Logger } from "../log.js";
import type { Database, OpenDatabaseOptions, Transaction } from "./database.js";
import { NOTIFY_ALL_SQL, notifyAllParams, NotifyPubsub, quoteChannel } from "./pubsub.js";
import { sharedTypeParsers } from "./type-parsers.js";
import { isProcessAlive } from "../process-alive.js";

/** Marks a data folder as open; PGlite has no lock of its own and two processes on one folder corrupt it. */
const LOCK_FILE = "agentgate.lock";

/** @internal PGlite in a data folder; see `openDatabase`. */
export async function openPgliteDatabase(
  opts: OpenDatabaseOptions & { dataDir: string; logger: Logger },
): Promise<Database> {
  const dir = resolve(opts.dataDir);
  await mkdir(dir, { recursive: true });
  const releaseLock = await lockDataDir(dir);
  let pglite: PGlite;
  try {
    pglite = await PGlite.create(dir, { parsers: sharedTypeParsers() });
  } catch (err) {
    await releaseLock();
    throw err;
  }

  const pubsub = new NotifyPubsub(
    {
      listen: async (ch) => void (await pglite.exec(`LISTEN ${quoteChannel(ch)}`)),
      unlisten: async (ch) => void (await pglite.exec(`UNLISTEN ${quoteChannel(ch)}`)),
      notifyAll: async (notifications) => void (await pglite.query(NOTIFY_ALL_SQL, notifyAllParams(notifications))),
    },
    opts.logger,
    opts.subscriberQueue,
  );
  // One in-process backend: its LISTEN can't drop, so there is no reconnect here.
  pglite.onNotification((channel, payload) => pubsub.deliver(channel, payload));

  let closed: Promise<void> | undefined;
  return {
    engine: "pglite",
    pubsub,
    query: (sql, params) => runQuery(pglite, sql, params),
    background: { query: (sql, params) => runQuery(pglite, sql, params) },
    transaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<T> {
      return pglite.transaction((ptx: PgliteTransaction) =>
        fn({
          query: (sql, params) => runQuery(ptx, sql, params),
          exec: async (sql) => void (await ptx.exec(sql)),
        }),
      );
    },
    async ping() {
      await pglite.query("SELECT 1");
    },
    close() {
      closed ??= (async () => {
        pubsub.closeAll();
        try {
          await pglite.close();
        } finally {
          await releaseLock();
        }
      })();
      return closed;
    },
  };
}

async function runQuery<R>(
  target: Pick<PGlite, "query"> | PgliteTransaction,
  sql: string,
  params?: unknown[],
): Promise<{ rows: R[]; rowCount: number }> {
  const r = await target.query<R>(sql, params);
  // PGlite reports affectedRows for writes only; pg's rowCount also counts rows a SELECT returns.
  return { rows: r.rows, rowCount: Math.max(r.affectedRows ?? 0, r.rows.length) };
}

/**
 * Takes the folder's lock file, or fails naming the process that holds it. A lock left by a process
 * that no longer exists is taken over.
 */
async function lockDataDir(dir: string): Promise<() => Promise<void>> {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, "wx");
      await fh.writeFile(String(process.pid));
      await fh.close();
      return () => unlink(path).catch(() => undefined);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const pid = Number((await readFile(path, "utf8").catch(() => "")).trim());
    if (isProcessAlive(pid)) {
      throw new Error(
        `data folder ${dir} is in use by process ${pid}; PGlite allows one process per folder (stop it, or use --database-url)`,
      );
    }
    await unlink(path).catch(() => undefined);
  }
  throw new Error(`could not lock data folder ${dir}`);
}
