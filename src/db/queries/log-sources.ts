import type { Queryable } from "../database.js";

/** A `workspace_agent_log_sources` row. */
export interface LogSource {
  workspaceAgentId: string;
  id: string;
  createdAt: Date;
  displayName: string;
  icon: string;
}

/** The fixed source legacy clients' logs (nil source id) are filed under, with Coder's id, name and icon. */
export const EXTERNAL_LOG_SOURCE = { id: "3b579bf4-1ed8-4b99-87a8-e9a1e3410410", displayName: "External", icon: "/emojis/1f310.png" } as const;

/** Inserts log sources of one agent; a source id the agent already has is left as it is. */
export async function insertLogSources(
  q: Queryable,
  p: { agentId: string; createdAt: Date; sources: { id: string; displayName: string; icon: string }[] },
): Promise<void> {
  if (p.sources.length === 0) return;
  await q.query(
    `INSERT INTO workspace_agent_log_sources (workspace_agent_id, id, created_at, display_name, icon)
     SELECT $1::uuid, u.id, $2::timestamptz, u.display_name, u.icon FROM unnest($3::uuid[], $4::text[], $5::text[]) AS u(id, display_name, icon)
     ON CONFLICT (workspace_agent_id, id) DO NOTHING`,
    [p.agentId, p.createdAt, p.sources.map((s) => s.id), p.sources.map((s) => s.displayName), p.sources.map((s) => s.icon)],
  );
}

/** The log sources of an agent. */
export async function listLogSources(q: Queryable, agentId: string): Promise<LogSource[]> {
  const { rows } = await q.query<LogSource>(
    `SELECT workspace_agent_id AS "workspaceAgentId", id, created_at AS "createdAt", display_name AS "displayName", icon
     FROM workspace_agent_log_sources WHERE workspace_agent_id = $1 ORDER BY created_at, id`,
    [agentId],
  );
  return rows;
}
