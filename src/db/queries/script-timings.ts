import type { Queryable } from "../database.js";
import type { ScriptTimingStage, ScriptTimingStatus } from "../enums.js";

/** A `workspace_agent_script_timings` row. */
export interface ScriptTiming {
  scriptId: string;
  startedAt: Date;
  endedAt: Date;
  exitCode: number;
  stage: ScriptTimingStage;
  status: ScriptTimingStatus;
}

/**
 * `InsertWorkspaceAgentScriptTimings` (ScriptCompleted), for a script of `agentId` only: false
 * (nothing written) when the script is unknown or another agent's, the two cases alike so the
 * answer reveals nothing about other agents' scripts. A second timing with the same start fails
 * on the unique key.
 */
export async function insertScriptTiming(q: Queryable, agentId: string, t: ScriptTiming): Promise<boolean> {
  const { rowCount } = await q.query(
    `INSERT INTO workspace_agent_script_timings (script_id, started_at, ended_at, exit_code, stage, status)
     SELECT s.id, $2, $3, $4, $5, $6 FROM workspace_agent_scripts s WHERE s.id = $1 AND s.workspace_agent_id = $7`,
    [t.scriptId, t.startedAt, t.endedAt, t.exitCode, t.stage, t.status, agentId],
  );
  return rowCount > 0;
}

/** The timings of a script, oldest first. */
export async function listScriptTimings(q: Queryable, scriptId: string): Promise<ScriptTiming[]> {
  const { rows } = await q.query<ScriptTiming>(
    `SELECT script_id AS "scriptId", started_at AS "startedAt", ended_at AS "endedAt", exit_code AS "exitCode", stage, status
     FROM workspace_agent_script_timings WHERE script_id = $1 ORDER BY started_at`,
    [scriptId],
  );
  return rows;
}
