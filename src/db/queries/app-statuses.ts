import type { Queryable } from "../database.js";
import type { AppStatusState } from "../enums.js";

/** A `workspace_app_statuses` row. */
export interface AppStatus {
  id: string;
  createdAt: Date;
  agentId: string;
  appId: string;
  workspaceId: string;
  state: AppStatusState;
  message: string;
  uri: string | null;
}

/** Inserts an app status (UpdateAppStatus). */
export async function insertAppStatus(q: Queryable, s: AppStatus): Promise<void> {
  await q.query(
    `INSERT INTO workspace_app_statuses (id, created_at, agent_id, app_id, workspace_id, state, message, uri)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [s.id, s.createdAt, s.agentId, s.appId, s.workspaceId, s.state, s.message, s.uri],
  );
}

/** The statuses of an app, newest first. */
export async function listAppStatuses(q: Queryable, appId: string, limit = 100): Promise<AppStatus[]> {
  const { rows } = await q.query<AppStatus>(
    `SELECT id, created_at AS "createdAt", agent_id AS "agentId", app_id AS "appId", workspace_id AS "workspaceId",
            state, message, uri
     FROM workspace_app_statuses WHERE app_id = $1 ORDER BY created_at DESC, id LIMIT $2`,
    [appId, limit],
  );
  return rows;
}
