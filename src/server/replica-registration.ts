import { hostname } from "node:os";
import type { Database } from "../db/database.js";
import { deleteReplica, deleteStaleReplicas, upsertReplica } from "../db/queries/replicas.js";
import type { Logger } from "../log.js";

/** How often a replica refreshes its `replicas` row, so others can tell the living from the gone. */
export const REPLICA_REFRESH_MS = 30_000;

/**
 * A replica row not refreshed for this long belongs to a process that died without removing it
 * (SIGKILL, a lost host): any live replica deletes it with its own refresh.
 */
export const STALE_REPLICA_MS = 10 * REPLICA_REFRESH_MS;

/** Timings of {@link registerReplica}; tests shorten them. */
export interface ReplicaRegistrationTimings {
  refreshMs: number;
  staleAfterMs: number;
}

/**
 * Records this server process in `replicas` (id, hostname, started_at), refreshes `updated_at`
 * every {@link REPLICA_REFRESH_MS}, prunes rows of replicas gone for {@link STALE_REPLICA_MS},
 * and removes its own row on `stop()`. Failures are logged: a replica row is bookkeeping, never
 * a reason to stop serving agents. Runs on the database's background pool.
 */
export async function registerReplica(
  db: Database,
  id: string,
  logger: Logger,
  timings: ReplicaRegistrationTimings = { refreshMs: REPLICA_REFRESH_MS, staleAfterMs: STALE_REPLICA_MS },
): Promise<{ stop(): Promise<void> }> {
  const startedAt = new Date();
  const refresh = async () => {
    const now = new Date();
    try {
      await upsertReplica(db.background, { id, hostname: hostname(), startedAt, updatedAt: now });
      const pruned = await deleteStaleReplicas(db.background, new Date(now.getTime() - timings.staleAfterMs));
      if (pruned > 0) logger.info({ pruned }, "removed rows of replicas gone for good");
    } catch (err) {
      logger.warn({ err }, "refreshing the replica row failed");
    }
  };
  await refresh();
  const timer = setInterval(() => void refresh(), timings.refreshMs);
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
