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
