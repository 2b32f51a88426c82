import type { Queryable } from "../database.js";

/** A `replicas` row: one running `agentgate serve`. */
export interface Replica {
  id: string;
  hostname: string;
  startedAt: Date;
  updatedAt: Date;
}

const SELECT = `id, hostname, started_at AS "startedAt", updated_at AS "updatedAt"`;

/** Registers this process, or refreshes its row (a heartbeat). */
export async function upsertReplica(q: Queryable, r: Replica): Promise<void> {
  await q.query(
    `INSERT INTO replicas (id, hostname, started_at, updated_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (id) DO UPDATE SET hostname = EXCLUDED.hostname, updated_at = EXCLUDED.updated_at`,
    [r.id, r.hostname, r.startedAt, r.updatedAt],
  );
}

/** Replicas seen since `since`. */
export async function listReplicas(q: Queryable, since: Date): Promise<Replica[]> {
  const { rows } = await q.query<Replica>(`SELECT ${SELECT} FROM replicas WHERE updated_at >= $1 ORDER BY started_at, id`, [since]);
  return rows;
}

/** Removes this replica's row at shutdown. */
export async function deleteReplica(q: Queryable, id: string): Promise<void> {
  await q.query("DELETE FROM replicas WHERE id = $1", [id]);
}

/** Removes replicas not seen since `before`; returns how many. */
export async function deleteStaleReplicas(q: Queryable, before: Date): Promise<number> {
  const { rowCount } = await q.query("DELETE FROM replicas WHERE updated_at < $1", [before]);
  return rowCount;
}
