import { hostname } from "node:os";
import type { Database } from "../db/database.js";
import { deleteReplica, deleteStaleReplicas, upsertReplica } from "../db/queries/replicas.js";
import type { Logger } from "../log.js";

/** How often a replica refreshes its `replicas` row, so others can tell the living from the gone. */
export const REPLICA_REFRESH_MS = 30_000;

/**
 * A replica row not refreshed for this long belongs to a process that died without removing it
 * (SIGKILL, a crash); every refresh prunes such rows, so they don't stay forever.
 */
export const REPLICA_STALE_MS = 10 * REPLICA_REFRESH_MS;

/**
 * Records this server process in `replicas` (id, hostname, started_at), refreshes `updated_at`
 * every {@link REPLICA_REFRESH_MS}, deletes the rows of replicas silent for {@link REPLICA_STALE_MS},
 * and removes its own row on `stop()`. Failures are logged: a
 * replica row is bookkeeping, never a reason to stop serving agents.
 */
export async function registerReplica(db: Database, id: string, logger: Logger): Promise<{ stop(): Promise<void> }> {
  const startedAt = new Date();
  const refresh = async () => {
    try {
      const now = new Date();
      await upsertReplica(db, { id, hostname: hostname(), startedAt, updatedAt: now });
      const pruned = await deleteStaleReplicas(db, new Date(now.getTime() - REPLICA_STALE_MS));
      if (pruned > 0) logger.info({ pruned, stale_ms: REPLICA_STALE_MS }, "removed the rows of replicas gone silent");
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
