import { hostname } from "node:os";
import type { Database } from "../db/database.js";
import { deleteReplica, upsertReplica } from "../db/queries/replicas.js";
import type { Logger } from "../log.js";

/** How often a replica refreshes its `replicas` row, so others can tell the living from the gone. */
export const REPLICA_REFRESH_MS = 30_000;

/**
 * Records this server process in `replicas` (id, hostname, started_at), refreshes `updated_at`
 * every {@link REPLICA_REFRESH_MS}, and removes the row on `stop()`. Failures are logged: a
 * replica row is bookkeeping, never a reason to stop serving agents.
 */
export async function registerReplica(db: Database, id: string, logger: Logger): Promise<{ stop(): Promise<void> }> {
  const startedAt = new Date();
  const refresh = async () => {
    try {
      await upsertReplica(db, { id, hostname: hostname(), startedAt, updatedAt: new Date() });
    } catch (err) {
      logger.warn({ err }, "refreshing the replica row failed");
    }
  };
  await refresh();
  const timer = setInterval(() => void refresh(), REPLICA_REFRESH_MS);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      try {
        await deleteReplica(db, id);
      } catch (err) {
        logger.warn({ err }, "removing the replica row failed");
      }
    },
  };
}
