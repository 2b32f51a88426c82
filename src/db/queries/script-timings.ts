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

/** `InsertWorkspaceAgentScriptTimings` (ScriptCompleted). An unknown script id fails on the foreign key. */
export async function insertScriptTiming(q: Queryable, t: ScriptTiming): Promise<void> {
  await q.query(
    "INSERT INTO workspace_agent_script_timings (script_id, started_at, ended_at, exit_code, stage, status) VALUES ($1, $2, $3, $4, $5, $6)",
    [t.scriptId, t.startedAt, t.endedAt, t.exitCode, t.stage, t.status],
  );
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
