import type { Queryable } from "../database.js";
import { AGENT_COLUMNS, type WorkspaceAgent } from "./agents.js";
import { pickPrefixed, selectList } from "./columns.js";

/** One line of `agentgate status`: an agent with where it lives. */
export interface AgentOverview {
  agent: WorkspaceAgent;
  workspaceId: string;
  workspaceName: string;
  ownerUsername: string;
  buildNumber: number;
  latestBuildNumber: number;
}

/**
 * Agents of the latest build of every non-deleted workspace, ordered by owner, workspace and agent
 * name; with `ownerId`, only that owner's workspaces; with `workspaceId`, only that workspace's.
 */
export async function listAgentOverviews(q: Queryable, filter: { ownerId?: string; workspaceId?: string } = {}): Promise<AgentOverview[]> {
  const { rows } = await q.query<Record<string, unknown>>(
    `SELECT ${selectList("a", AGENT_COLUMNS, "a_")},
            w.id AS "workspaceId", w.name AS "workspaceName", u.username AS "ownerUsername",
            b.build_number AS "buildNumber", lb.build_number AS "latestBuildNumber"
     FROM workspaces w
     JOIN users u ON u.id = w.owner_id
     JOIN LATERAL (
       SELECT job_id, build_number FROM workspace_builds WHERE workspace_id = w.id ORDER BY build_number DESC LIMIT 1
     ) lb ON true
     JOIN workspace_builds b ON b.job_id = lb.job_id
     JOIN workspace_resources r ON r.job_id = b.job_id
     JOIN workspace_agents a ON a.resource_id = r.id
     WHERE NOT w.deleted AND NOT a.deleted AND ($1::uuid IS NULL OR w.owner_id = $1::uuid) AND ($2::uuid IS NULL OR w.id = $2::uuid)
     ORDER BY lower(u.username), lower(w.name), a.name`,
    [filter.ownerId ?? null, filter.workspaceId ?? null],
  );
  return rows.map((row) => ({
    agent: pickPrefixed<WorkspaceAgent>(row, "a_", AGENT_COLUMNS),
    workspaceId: row.workspaceId as string,
    workspaceName: row.workspaceName as string,
    ownerUsername: row.ownerUsername as string,
    buildNumber: row.buildNumber as number,
    latestBuildNumber: row.latestBuildNumber as number,
  }));
}
