import type { Queryable } from "../database.js";

/** A `workspace_agent_scripts` row. */
export interface AgentScript {
  id: string;
  workspaceAgentId: string;
  logSourceId: string;
  logPath: string;
  createdAt: Date;
  script: string;
  cron: string;
  startBlocksLogin: boolean;
  runOnStart: boolean;
  runOnStop: boolean;
  timeoutSeconds: number;
  displayName: string;
}

export const SCRIPT_SELECT = `id, workspace_agent_id AS "workspaceAgentId", log_source_id AS "logSourceId", log_path AS "logPath",
  created_at AS "createdAt", script, cron, start_blocks_login AS "startBlocksLogin", run_on_start AS "runOnStart",
  run_on_stop AS "runOnStop", timeout_seconds AS "timeoutSeconds", display_name AS "displayName"`;

/** Inserts an agent's scripts (provisioning). */
export async function insertScripts(q: Queryable, scripts: AgentScript[]): Promise<void> {
  for (const s of scripts) {
    await q.query(
      `INSERT INTO workspace_agent_scripts (id, workspace_agent_id, log_source_id, log_path, created_at, script, cron,
         start_blocks_login, run_on_start, run_on_stop, timeout_seconds, display_name)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
      [s.id, s.workspaceAgentId, s.logSourceId, s.logPath, s.createdAt, s.script, s.cron, s.startBlocksLogin, s.runOnStart, s.runOnStop, s.timeoutSeconds, s.displayName],
    );
  }
}

/** The scripts of an agent. */
export async function listScriptsByAgentId(q: Queryable, agentId: string): Promise<AgentScript[]> {
  const { rows } = await q.query<AgentScript>(`SELECT ${SCRIPT_SELECT} FROM workspace_agent_scripts WHERE workspace_agent_id = $1 ORDER BY created_at, id`, [agentId]);
  return rows;
}
