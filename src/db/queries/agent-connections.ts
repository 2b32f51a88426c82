import type { Queryable } from "../database.js";
import { isoOrNull } from "./columns.js";

/**
 * The rows of the agents in `u`, locked in id order before a batched UPDATE of them. The UPDATE
 * alone locks in whatever order its plan visits them, so two statements of many agents each (a
 * connect on one worker and a disconnect or refresh on another, during a reconnect storm) could
 * each hold a row the other waits for: PostgreSQL's "deadlock detected", and both writes lost.
 * The UPDATE's own conditions are still checked on each row's newest version.
 */
const LOCKED_IN_ID_ORDER = `locked AS MATERIALIZED (SELECT a.id FROM workspace_agents a JOIN u ON a.id = u.id ORDER BY a.id FOR UPDATE OF a)`;

/**
 * One connection of an agent as {@link connectAgent} recorded it. Its generation and the
 * disconnect it found guard every later write of that connection.
 */
export interface AgentConnection {
  connectionGeneration: number;
  firstConnectedAt: Date;
  lastConnectedAt: Date;
  /** `disconnected_at` as the connection found it: an earlier connection's disconnect, or null. */
  disconnectedAt: Date | null;
}

/**
 * The init write of a new connection, as coderd's: first_connected_at kept or set to `now`,
 * last_connected_at = now, this replica, disconnected_at left as stored, and a new
 * connection_generation that later writes of this connection are guarded by.
 * Undefined when the agent is gone or deleted.
 */
export async function connectAgent(
  q: Queryable,
  p: { id: string; replicaId: string; now: Date },
): Promise<AgentConnection | undefined> {
  return (await connectAgents(q, p.replicaId, [{ id: p.id, now: p.now }]))[0];
}

/**
 * {@link connectAgent} for many agents in one statement, each with its own time; answers each, in
 * order. The agents must differ: an UPDATE … FROM touches a row once however many items name it.
 */
export async function connectAgents(
  q: Queryable,
  replicaId: string,
  items: ReadonlyArray<{ id: string; now: Date }>,
): Promise<Array<AgentConnection | undefined>> {
  const { rows } = await q.query<AgentConnection & { id: string }>(
    `WITH u AS MATERIALIZED (SELECT * FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, now)), ${LOCKED_IN_ID_ORDER}
     UPDATE workspace_agents a SET
       first_connected_at = coalesce(a.first_connected_at, u.now),
       last_connected_at = u.now,
       last_connected_replica_id = $3,
       connection_generation = a.connection_generation + 1,
       updated_at = u.now
     FROM u JOIN locked ON locked.id = u.id
     WHERE a.id = u.id AND NOT a.deleted
     RETURNING a.id, a.connection_generation AS "connectionGeneration", a.first_connected_at AS "firstConnectedAt",
               a.last_connected_at AS "lastConnectedAt", a.disconnected_at AS "disconnectedAt"`,
    [items.map((i) => i.id), items.map((i) => isoOrNull(i.now)), replicaId],
  );
  const byId = new Map<string, AgentConnection>();
  for (const { id, ...connection } of rows) byId.set(id, connection);
  return items.map((i) => byId.get(i.id));
}

/** What later writes of a connection are guarded by: its generation and the disconnect it found. */
export type ConnectionGuard = Pick<AgentConnection, "connectionGeneration" | "disconnectedAt">;

/** One periodic refresh of a live connection: it was last seen `at`. */
export interface ConnectionRefresh {
  agentId: string;
  connection: ConnectionGuard;
  at: Date;
  /**
   * Called when the refresh was refused because the row records another connection of the
   * agent, one that has ended since (see {@link endedConnections}): the live connection should
   * record itself again.
   */
  onSuperseded?: () => void;
}

/**
 * Writes many agents' refreshes in one statement (unnest of parallel arrays), the heartbeat flush:
 * last_connected_at = at, disconnected_at cleared, this replica. A refresh applies only while its
 * connection is the row's current one (same generation) and has not been disconnected: while
 * disconnected_at is null or still the earlier disconnect the connection found (compared to the
 * millisecond, the precision it was read with). So a refresh that reaches the row after its own
 * connection's disconnect, even one waiting on the row lock while that disconnect commits (the
 * re-check of the WHERE on the new row version sees it), changes nothing. An agent given twice
 * keeps its last refresh. Returns the ids written.
 */
export async function refreshAgentConnections(q: Queryable, replicaId: string, refreshes: ConnectionRefresh[]): Promise<string[]> {
  const byId = new Map<string, ConnectionRefresh>();
  for (const r of refreshes) byId.set(r.agentId, r);
  if (byId.size === 0) return [];
  const list = [...byId.values()];
  const { rows } = await q.query<{ id: string }>(
    `WITH u AS MATERIALIZED (SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::bigint[], $4::timestamptz[]) AS u(id, at, generation, found_disconnected_at)),
       ${LOCKED_IN_ID_ORDER}
     UPDATE workspace_agents a SET
       last_connected_at = u.at,
       disconnected_at = NULL,
       last_connected_replica_id = $5,
       updated_at = u.at
     FROM u JOIN locked ON locked.id = u.id
     WHERE a.id = u.id AND a.connection_generation = u.generation
       AND (a.disconnected_at IS NULL OR date_trunc('milliseconds', a.disconnected_at) = u.found_disconnected_at)
     RETURNING a.id`,
    [
      list.map((r) => r.agentId), list.map((r) => isoOrNull(r.at)), list.map((r) => r.connection.connectionGeneration),
      list.map((r) => isoOrNull(r.connection.disconnectedAt)), replicaId,
    ],
  );
  return rows.map((r) => r.id);
}

/**
 * Of `agentIds`, those whose row records a connection that has ended: disconnected_at written at
 * or after last_connected_at. A refresh refused for such a row came from a connection the row
 * doesn't know is alive: another dial of the same agent (one its client had given up on, admitted
 * late on another worker) connected after it and ended, and without help the row would say
 * "disconnected" for as long as the live connection lasts.
 */
export async function endedConnections(q: Queryable, agentIds: readonly string[]): Promise<string[]> {
  if (agentIds.length === 0) return [];
  const { rows } = await q.query<{ id: string }>(
    `SELECT id FROM workspace_agents
     WHERE id = ANY($1::uuid[]) AND NOT deleted AND disconnected_at IS NOT NULL AND disconnected_at >= last_connected_at`,
    [agentIds],
  );
  return rows.map((r) => r.id);
}

/**
 * The final write of a connection: sets disconnected_at only if the row still belongs to that
 * connection (same replica and generation), so a late disconnect never overwrites a newer one.
 * Returns whether it was written.
 */
export async function disconnectAgent(
  q: Queryable,
  p: { id: string; replicaId: string; generation: number; disconnectedAt: Date },
): Promise<boolean> {
  return (await disconnectAgents(q, p.replicaId, [{ id: p.id, generation: p.generation, disconnectedAt: p.disconnectedAt }]))[0]!;
}

/** One connection's final write, for {@link disconnectAgents}. */
export interface ConnectionEnd {
  id: string;
  generation: number;
  disconnectedAt: Date;
}

/**
 * {@link disconnectAgent} for many connections of this replica in one statement; answers whether
 * each was written, in order. The agents must differ (see {@link connectAgents}).
 */
export async function disconnectAgents(q: Queryable, replicaId: string, ends: readonly ConnectionEnd[]): Promise<boolean[]> {
  const { rows } = await q.query<{ id: string }>(
    `WITH u AS MATERIALIZED (SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[]) AS u(id, generation, at)), ${LOCKED_IN_ID_ORDER}
     UPDATE workspace_agents a SET disconnected_at = u.at, updated_at = u.at
     FROM u JOIN locked ON locked.id = u.id
     WHERE a.id = u.id AND a.last_connected_replica_id = $4 AND a.connection_generation = u.generation
     RETURNING a.id`,
    [ends.map((e) => e.id), ends.map((e) => e.generation), ends.map((e) => isoOrNull(e.disconnectedAt)), replicaId],
  );
  const written = new Set(rows.map((r) => r.id));
  return ends.map((e) => written.has(e.id));
}
