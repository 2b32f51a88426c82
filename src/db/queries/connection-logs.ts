import type { Queryable } from "../database.js";
import type { ConnectionType } from "../enums.js";

/** A `connection_logs` row (the columns agentgate writes). */
export interface ConnectionLog {
  id: string;
  connectTime: Date;
  organizationId: string | null;
  workspaceOwnerId: string;
  workspaceId: string;
  workspaceName: string;
  agentName: string;
  agentId: string | null;
  type: ConnectionType;
  ip: string | null;
  code: number | null;
  connectionId: string | null;
  disconnectTime: Date | null;
  disconnectReason: string | null;
  updatedAt: Date;
}

/** What a ReportConnection event does to its connection's log row. */
export const CONNECTION_ACTIONS = ["connect", "disconnect"] as const;

/** One ReportConnection event. */
export interface ConnectionEvent {
  /** A new row id, used only if the event inserts. */
  id: string;
  connectionId: string;
  action: (typeof CONNECTION_ACTIONS)[number];
  time: Date;
  workspaceOwnerId: string;
  workspaceId: string;
  workspaceName: string;
  agentName: string;
  agentId: string;
  type: ConnectionType;
  /** An IP address, or null; an unparsable one must be turned into null by the caller. */
  ip: string | null;
  /** Disconnects only. */
  code: number | null;
  /** Disconnects only; null when empty. */
  reason: string | null;
}

/**
 * Upserts a connection log keyed on (connection_id, workspace_id, agent_name): a connect inserts;
 * a disconnect fills disconnect_time/reason/code once (a later disconnect changes nothing); a
 * disconnect without a connect inserts a row with connect_time = disconnect_time.
 */
export async function upsertConnectionLog(q: Queryable, e: ConnectionEvent): Promise<void> {
  const disconnect = e.action === "disconnect";
  await q.query(
    `INSERT INTO connection_logs AS c (id, connect_time, workspace_owner_id, workspace_id, workspace_name, agent_name, agent_id,
       type, ip, code, connection_id, disconnect_time, disconnect_reason, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::inet, $10, $11, $12, $13, $2)
     ON CONFLICT (connection_id, workspace_id, agent_name) DO UPDATE SET
       disconnect_time = CASE WHEN c.disconnect_time IS NULL THEN EXCLUDED.disconnect_time ELSE c.disconnect_time END,
       disconnect_reason = CASE WHEN c.disconnect_time IS NULL THEN EXCLUDED.disconnect_reason ELSE c.disconnect_reason END,
       code = CASE WHEN c.disconnect_time IS NULL THEN EXCLUDED.code ELSE c.code END,
       updated_at = EXCLUDED.updated_at
     WHERE EXCLUDED.disconnect_time IS NOT NULL`,
    [
      e.id, e.time, e.workspaceOwnerId, e.workspaceId, e.workspaceName, e.agentName, e.agentId, e.type, e.ip,
      disconnect ? e.code : null, e.connectionId, disconnect ? e.time : null, disconnect ? e.reason : null,
    ],
  );
}

/** The connection log of one connection. */
export async function getConnectionLog(
  q: Queryable,
  p: { connectionId: string; workspaceId: string; agentName: string },
): Promise<ConnectionLog | undefined> {
  const { rows } = await q.query<ConnectionLog>(
    `SELECT id, connect_time AS "connectTime", organization_id AS "organizationId", workspace_owner_id AS "workspaceOwnerId",
            workspace_id AS "workspaceId", workspace_name AS "workspaceName", agent_name AS "agentName", agent_id AS "agentId",
            type, host(ip) AS ip, code, connection_id AS "connectionId", disconnect_time AS "disconnectTime",
            disconnect_reason AS "disconnectReason", updated_at AS "updatedAt"
     FROM connection_logs WHERE connection_id = $1 AND workspace_id = $2 AND agent_name = $3`,
    [p.connectionId, p.workspaceId, p.agentName],
  );
  return rows[0];
}
