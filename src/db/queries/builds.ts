import type { Queryable } from "../database.js";
import type { BuildReason, WorkspaceTransition } from "../enums.js";
import { selectList, type ColumnList } from "./columns.js";

/** A `workspace_builds` row (the columns agentgate uses). */
export interface WorkspaceBuild {
  id: string;
  createdAt: Date;
  updatedAt: Date;
  workspaceId: string;
  templateVersionId: string | null;
  buildNumber: number;
  transition: WorkspaceTransition;
  initiatorId: string;
  jobId: string;
  deadline: Date;
  maxDeadline: Date;
  reason: BuildReason;
  dailyCost: number;
}

const BUILD_COLUMNS: ColumnList = [
  ["id", "id"], ["created_at", "createdAt"], ["updated_at", "updatedAt"], ["workspace_id", "workspaceId"],
  ["template_version_id", "templateVersionId"], ["build_number", "buildNumber"], ["transition", "transition"],
  ["initiator_id", "initiatorId"], ["job_id", "jobId"], ["deadline", "deadline"], ["max_deadline", "maxDeadline"],
  ["reason", "reason"], ["daily_cost", "dailyCost"],
];

/** The build with the highest build_number of a workspace: its "latest build", the only one whose agents may connect. */
export async function getLatestBuild(q: Queryable, workspaceId: string): Promise<WorkspaceBuild | undefined> {
  const { rows } = await q.query<WorkspaceBuild>(
    `SELECT ${selectList("b", BUILD_COLUMNS)} FROM workspace_builds b
     WHERE b.workspace_id = $1 ORDER BY b.build_number DESC LIMIT 1`,
    [workspaceId],
  );
  return rows[0];
}

/**
 * Inserts the next build of a workspace, numbered one past the latest. The workspace row is locked
 * first so concurrent builds of one workspace get consecutive numbers instead of a unique violation.
 */
export async function insertNextBuild(
  q: Queryable,
  p: { id: string; workspaceId: string; jobId: string; initiatorId: string; transition: WorkspaceTransition; reason: BuildReason; now: Date },
): Promise<WorkspaceBuild> {
  await q.query("SELECT 1 FROM workspaces WHERE id = $1 FOR UPDATE", [p.workspaceId]);
  const { rows } = await q.query<WorkspaceBuild>(
    `INSERT INTO workspace_builds AS b (id, workspace_id, job_id, initiator_id, transition, reason, build_number, created_at, updated_at)
     SELECT $1::uuid, $2::uuid, $3::uuid, $4::uuid, $5::workspace_transition, $6::build_reason,
            coalesce(max(build_number), 0) + 1, $7::timestamptz, $7::timestamptz
     FROM workspace_builds WHERE workspace_id = $2
     RETURNING ${selectList("b", BUILD_COLUMNS)}`,
    [p.id, p.workspaceId, p.jobId, p.initiatorId, p.transition, p.reason, p.now],
  );
  return rows[0]!;
}
