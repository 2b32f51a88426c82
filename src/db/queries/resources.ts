import type { Queryable } from "../database.js";
import type { WorkspaceTransition } from "../enums.js";
import { selectList, type ColumnList } from "./columns.js";

/** A `workspace_resources` row. */
export interface WorkspaceResource {
  id: string;
  createdAt: Date;
  jobId: string;
  transition: WorkspaceTransition;
  type: string;
  name: string;
  hide: boolean;
  icon: string;
  instanceType: string | null;
  dailyCost: number;
  modulePath: string | null;
}

const RESOURCE_COLUMNS: ColumnList = [
  ["id", "id"], ["created_at", "createdAt"], ["job_id", "jobId"], ["transition", "transition"], ["type", "type"],
  ["name", "name"], ["hide", "hide"], ["icon", "icon"], ["instance_type", "instanceType"],
  ["daily_cost", "dailyCost"], ["module_path", "modulePath"],
];

/** Inserts a resource of a build (keyed by the build's job id, as in Coder). */
export async function insertResource(
  q: Queryable,
  p: { id: string; jobId: string; transition: WorkspaceTransition; type: string; name: string; now: Date },
): Promise<WorkspaceResource> {
  const { rows } = await q.query<WorkspaceResource>(
    `INSERT INTO workspace_resources AS r (id, job_id, transition, type, name, created_at)
     VALUES ($1, $2, $3, $4, $5, $6)
     RETURNING ${selectList("r", RESOURCE_COLUMNS)}`,
    [p.id, p.jobId, p.transition, p.type, p.name, p.now],
  );
  return rows[0]!;
}

