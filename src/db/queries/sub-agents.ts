import type { Queryable } from "../database.js";
import type { DisplayApp } from "../enums.js";
import { AGENT_SELECT, type WorkspaceAgent } from "./agents.js";

/** Non-deleted sub-agents of an agent, with their tokens (ListSubAgents). */
export async function listSubAgents(q: Queryable, parentId: string): Promise<WorkspaceAgent[]> {
  const { rows } = await q.query<WorkspaceAgent>(
    `SELECT ${AGENT_SELECT} FROM workspace_agents a WHERE a.parent_id = $1 AND NOT a.deleted ORDER BY a.created_at, a.name`,
    [parentId],
  );
  return rows;
}

/** How many non-deleted sub-agents an agent has (the CreateSubAgent quota). */
export async function countSubAgents(q: Queryable, parentId: string): Promise<number> {
  const { rows } = await q.query<{ n: number }>("SELECT count(*)::int AS n FROM workspace_agents WHERE parent_id = $1 AND NOT deleted", [parentId]);
  return rows[0]?.n ?? 0;
}

/** Soft-deletes a sub-agent of `parentId` (DeleteSubAgent). Returns whether one was deleted. */
export async function softDeleteSubAgent(q: Queryable, p: { id: string; parentId: string; now: Date }): Promise<boolean> {
  const { rowCount } = await q.query(
    "UPDATE workspace_agents SET deleted = true, updated_at = $3 WHERE id = $1 AND parent_id = $2 AND NOT deleted",
    [p.id, p.parentId, p.now],
  );
  return rowCount > 0;
}

/** Sets display_apps and, when non-empty, directory of a pre-created sub-agent (CreateSubAgent with id). */
export async function updateSubAgentDisplay(
  q: Queryable,
  p: { id: string; displayApps: DisplayApp[]; directory: string; now: Date },
): Promise<void> {
  await q.query(
    `UPDATE workspace_agents SET display_apps = $2::text[]::display_app[],
       directory = CASE WHEN $3 = '' THEN directory ELSE $3 END, updated_at = $4
     WHERE id = $1`,
    [p.id, p.displayApps, p.directory, p.now],
  );
}
