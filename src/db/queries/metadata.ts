import type { Queryable } from "../database.js";
import { isoOrNull } from "./columns.js";

/** A `workspace_agent_metadata` row: a description from the provisioner plus the latest result. */
export interface AgentMetadata {
  workspaceAgentId: string;
  displayName: string;
  key: string;
  script: string;
  value: string;
  error: string;
  /** Seconds (agent-api.md §2.2). */
  timeout: number;
  /** Seconds. */
  interval: number;
  collectedAt: Date;
  displayOrder: number;
}

/** A description as the provisioner creates it. */
export interface MetadataDescription {
  key: string;
  displayName: string;
  script: string;
  intervalSeconds: number;
  timeoutSeconds: number;
  displayOrder?: number;
}

/** Creates an agent's metadata rows (only the provisioner does; agents may only update existing keys). */
export async function insertMetadataDescriptions(q: Queryable, agentId: string, items: MetadataDescription[]): Promise<void> {
  if (items.length === 0) return;
  await q.query(
    `INSERT INTO workspace_agent_metadata (workspace_agent_id, key, display_name, script, interval, timeout, display_order)
     SELECT $1::uuid, u.key, u.display_name, u.script, u.interval, u.timeout, u.display_order
     FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::int[])
       AS u(key, display_name, script, interval, timeout, display_order)`,
    [
      agentId, items.map((m) => m.key), items.map((m) => m.displayName), items.map((m) => m.script),
      items.map((m) => m.intervalSeconds), items.map((m) => m.timeoutSeconds), items.map((m, i) => m.displayOrder ?? i),
    ],
  );
}

/** Every metadata row of an agent, by display order. */
export async function listMetadata(q: Queryable, agentId: string): Promise<AgentMetadata[]> {
  const { rows } = await q.query<AgentMetadata>(
    `SELECT workspace_agent_id AS "workspaceAgentId", display_name AS "displayName", key, script, value, error,
            timeout, interval, collected_at AS "collectedAt", display_order AS "displayOrder"
     FROM workspace_agent_metadata WHERE workspace_agent_id = $1 ORDER BY display_order, key`,
    [agentId],
  );
  return rows;
}

/** One reported metadata result. */
export interface MetadataUpdate {
  agentId: string;
  key: string;
  value: string;
  error: string;
  collectedAt: Date;
}

/**
 * `UpdateWorkspaceAgentMetadata` for many agents in one statement (unnest). Only existing
 * (agent, key) rows change; unknown keys are ignored. For a key given twice the newest
 * collectedAt wins. Returns the number of rows updated.
 */
export async function updateMetadata(q: Queryable, updates: MetadataUpdate[]): Promise<number> {
  const latest = new Map<string, MetadataUpdate>();
  for (const u of updates) {
    const k = `${u.agentId}\u0000${u.key}`;
    const prev = latest.get(k);
    if (prev === undefined || prev.collectedAt.getTime() <= u.collectedAt.getTime()) latest.set(k, u);
  }
  if (latest.size === 0) return 0;
  const list = [...latest.values()];
  const { rowCount } = await q.query(
    `UPDATE workspace_agent_metadata m SET value = u.value, error = u.error, collected_at = u.collected_at
     FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]) AS u(agent_id, key, value, error, collected_at)
     WHERE m.workspace_agent_id = u.agent_id AND m.key = u.key`,
    [list.map((u) => u.agentId), list.map((u) => u.key), list.map((u) => u.value), list.map((u) => u.error), list.map((u) => isoOrNull(u.collectedAt))],
  );
  return rowCount;
}

/**
 * Most agent ids per `workspace_agent_metadata_batch` payload: each id costs 40 bytes of JSON
 * (`"<36>", `), so 180 of them stay well under NOTIFY's 8000-byte limit.
 */
export const METADATA_BATCH_IDS_PER_NOTIFY = 180;

/**
 * The metadata batcher's flush as one statement: {@link updateMetadata}'s UPDATE (newest
 * collectedAt wins per agent+key, unknown keys ignored), and in the same statement a
 * `pg_notify(channel, '{"agent_ids": [...]}')` per chunk of {@link METADATA_BATCH_IDS_PER_NOTIFY}
 * agents whose rows changed. Returns the rows updated and the agents notified.
 */
export async function updateMetadataAndNotify(
  q: Queryable,
  updates: MetadataUpdate[],
  channel: string,
): Promise<{ rowsUpdated: number; agentIds: string[] }> {
  const latest = new Map<string, MetadataUpdate>();
  for (const u of updates) {
    const k = `${u.agentId}\u0000${u.key}`;
    const prev = latest.get(k);
    if (prev === undefined || prev.collectedAt.getTime() <= u.collectedAt.getTime()) latest.set(k, u);
  }
  if (latest.size === 0) return { rowsUpdated: 0, agentIds: [] };
  const list = [...latest.values()];
  const { rows } = await q.query<{ rowsUpdated: number; agentIds: string[] }>(
    `WITH updated AS (
       UPDATE workspace_agent_metadata m SET value = u.value, error = u.error, collected_at = u.collected_at
       FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]) AS u(agent_id, key, value, error, collected_at)
       WHERE m.workspace_agent_id = u.agent_id AND m.key = u.key
       RETURNING m.workspace_agent_id
     ), agents AS (
       SELECT DISTINCT workspace_agent_id AS id FROM updated
     ), chunks AS (
       SELECT json_build_object('agent_ids', json_agg(id ORDER BY id))::text AS payload, array_agg(id) AS ids
       FROM (SELECT id, (row_number() OVER (ORDER BY id) - 1) / $6 AS chunk FROM agents) numbered
       GROUP BY chunk
     ), notified AS (
       SELECT ids, pg_notify($7, payload) FROM chunks
     )
     SELECT (SELECT count(*) FROM updated)::int AS "rowsUpdated",
            coalesce((SELECT array_agg(id) FROM notified, unnest(ids) AS id), '{}')::text[] AS "agentIds"`,
    [
      list.map((u) => u.agentId), list.map((u) => u.key), list.map((u) => u.value), list.map((u) => u.error),
      list.map((u) => isoOrNull(u.collectedAt)), METADATA_BATCH_IDS_PER_NOTIFY, channel,
    ],
  );
  return rows[0] ?? { rowsUpdated: 0, agentIds: [] };
}
