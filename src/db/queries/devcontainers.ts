import type { Queryable } from "../database.js";

/** A `workspace_agent_devcontainers` row. */
export interface Devcontainer {
  id: string;
  workspaceAgentId: string;
  createdAt: Date;
  workspaceFolder: string;
  configPath: string;
  name: string;
  subagentId: string | null;
}

/** Inserts an agent's devcontainers (provisioning). */
export async function insertDevcontainers(q: Queryable, items: Devcontainer[]): Promise<void> {
  for (const d of items) {
    await q.query(
      `INSERT INTO workspace_agent_devcontainers (id, workspace_agent_id, created_at, workspace_folder, config_path, name, subagent_id)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [d.id, d.workspaceAgentId, d.createdAt, d.workspaceFolder, d.configPath, d.name, d.subagentId],
    );
  }
}

/** The devcontainers of an agent (no rows is fine). */
export async function listDevcontainersByAgentId(q: Queryable, agentId: string): Promise<Devcontainer[]> {
  const { rows } = await q.query<Devcontainer>(
    `SELECT id, workspace_agent_id AS "workspaceAgentId", created_at AS "createdAt", workspace_folder AS "workspaceFolder",
            config_path AS "configPath", name, subagent_id AS "subagentId"
     FROM workspace_agent_devcontainers WHERE workspace_agent_id = $1 ORDER BY created_at, id`,
    [agentId],
  );
  return rows;
}
