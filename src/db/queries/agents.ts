import type { Queryable } from "../database.js";
import type { AgentKeyScope, AgentSubsystem, DisplayApp, LifecycleState } from "../enums.js";
import { isoOrNull, pickPrefixed, selectList, type ColumnList } from "./columns.js";
import { USER_COLUMNS, type User } from "./users.js";
import { WORKSPACE_COLUMNS, type Workspace } from "./workspaces.js";

/** A `workspace_agents` row, every column. */
export interface WorkspaceAgent {
  id: string;
  createdAt: Date;
  updatedAt: Date;
  name: string;
  resourceId: string;
  authToken: string;
  authInstanceId: string | null;
  firstConnectedAt: Date | null;
  lastConnectedAt: Date | null;
  disconnectedAt: Date | null;
  lastConnectedReplicaId: string | null;
  /** agentgate's addition: bumped by {@link connectAgent}; guards later writes of that connection. */
  connectionGeneration: number;
  /** 0 disables the "timeout" status. */
  connectionTimeoutSeconds: number;
  architecture: string;
  operatingSystem: string;
  environmentVariables: Record<string, string> | null;
  instanceMetadata: unknown;
  resourceMetadata: unknown;
  directory: string;
  expandedDirectory: string;
  version: string;
  apiVersion: string;
  subsystems: AgentSubsystem[];
  lifecycleState: LifecycleState;
  startedAt: Date | null;
  readyAt: Date | null;
  logsLength: number;
  logsOverflowed: boolean;
  troubleshootingUrl: string;
  motdFile: string;
  displayApps: DisplayApp[];
  displayOrder: number;
  parentId: string | null;
  apiKeyScope: AgentKeyScope;
  deleted: boolean;
}

/** @internal */
export const AGENT_COLUMNS: ColumnList = [
  ["id", "id"], ["created_at", "createdAt"], ["updated_at", "updatedAt"], ["name", "name"],
  ["resource_id", "resourceId"], ["auth_token", "authToken"], ["auth_instance_id", "authInstanceId"],
  ["first_connected_at", "firstConnectedAt"], ["last_connected_at", "lastConnectedAt"],
  ["disconnected_at", "disconnectedAt"], ["last_connected_replica_id", "lastConnectedReplicaId"],
  ["connection_generation", "connectionGeneration"], ["connection_timeout_seconds", "connectionTimeoutSeconds"],
  ["architecture", "architecture"], ["operating_system", "operatingSystem"],
  ["environment_variables", "environmentVariables"], ["instance_metadata", "instanceMetadata"],
  ["resource_metadata", "resourceMetadata"], ["directory", "directory"], ["expanded_directory", "expandedDirectory"],
  ["version", "version"], ["api_version", "apiVersion"], ["coalesce(@.subsystems, '{}')::text[]", "subsystems"],
  ["lifecycle_state", "lifecycleState"], ["started_at", "startedAt"], ["ready_at", "readyAt"],
  ["logs_length", "logsLength"], ["logs_overflowed", "logsOverflowed"], ["troubleshooting_url", "troubleshootingUrl"],
  ["motd_file", "motdFile"], ["coalesce(@.display_apps, '{}')::text[]", "displayApps"], ["display_order", "displayOrder"],
  ["parent_id", "parentId"], ["api_key_scope", "apiKeyScope"], ["deleted", "deleted"],
];

const AGENT_SELECT = selectList("a", AGENT_COLUMNS);

/** What the agent endpoint learns from a token (agent-api.md §1.2). */
export interface AgentAuthRow {
  agent: WorkspaceAgent;
  /** The build the agent was provisioned in. */
  buildId: string;
  buildNumber: number;
  /** The workspace's latest build; differs from `buildId` for an agent of an outdated build. */
  latestBuildId: string;
  latestBuildNumber: number;
  workspace: Workspace;
  owner: User;
}

/**
 * Looks an agent up by its auth token in one query: agent → resource → build → workspace → owner,
 * plus the workspace's latest build. Deleted workspaces and deleted (sub-)agents give no row.
 */
export async function getAgentByToken(q: Queryable, token: string): Promise<AgentAuthRow | undefined> {
  const { rows } = await q.query<Record<string, unknown>>(
    `SELECT ${selectList("a", AGENT_COLUMNS, "a_")}, ${selectList("w", WORKSPACE_COLUMNS, "w_")},
            ${selectList("u", USER_COLUMNS, "u_")},
            b.id AS "buildId", b.build_number AS "buildNumber",
            lb.id AS "latestBuildId", lb.build_number AS "latestBuildNumber"
     FROM workspace_agents a
     JOIN workspace_resources r ON r.id = a.resource_id
     JOIN workspace_builds b ON b.job_id = r.job_id
     JOIN workspaces w ON w.id = b.workspace_id
     JOIN users u ON u.id = w.owner_id
     JOIN LATERAL (
       SELECT id, build_number FROM workspace_builds WHERE workspace_id = w.id ORDER BY build_number DESC LIMIT 1
     ) lb ON true
     WHERE a.auth_token = $1 AND NOT a.deleted AND NOT w.deleted`,
    [token],
  );
  const row = rows[0];
  if (row === undefined) return undefined;
  return {
    agent: pickPrefixed<WorkspaceAgent>(row, "a_", AGENT_COLUMNS),
    buildId: row.buildId as string,
    buildNumber: row.buildNumber as number,
    latestBuildId: row.latestBuildId as string,
    latestBuildNumber: row.latestBuildNumber as number,
    workspace: pickPrefixed<Workspace>(row, "w_", WORKSPACE_COLUMNS),
    owner: pickPrefixed<User>(row, "u_", USER_COLUMNS),
  };
}

/** The non-deleted agent with this id (each RPC re-reads it, §1.7). */
export async function getAgentById(q: Queryable, id: string): Promise<WorkspaceAgent | undefined> {
  const { rows } = await q.query<WorkspaceAgent>(`SELECT ${AGENT_SELECT} FROM workspace_agents a WHERE a.id = $1 AND NOT a.deleted`, [id]);
  return rows[0];
}

/** The non-deleted agents of a build, by name. */
export async function listAgentsByBuildId(q: Queryable, buildId: string): Promise<WorkspaceAgent[]> {
  const { rows } = await q.query<WorkspaceAgent>(
    `SELECT ${AGENT_SELECT}
     FROM workspace_agents a
     JOIN workspace_resources r ON r.id = a.resource_id
     JOIN workspace_builds b ON b.job_id = r.job_id
     WHERE b.id = $1 AND NOT a.deleted
     ORDER BY a.name`,
    [buildId],
  );
  return rows;
}

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

/** Columns a provisioner sets when it creates an agent. */
export interface InsertAgentParams {
  id: string;
  resourceId: string;
  name: string;
  authToken: string;
  architecture: string;
  operatingSystem: string;
  directory?: string;
  environmentVariables?: Record<string, string> | null;
  connectionTimeoutSeconds?: number;
  troubleshootingUrl?: string;
  motdFile?: string;
  displayApps?: DisplayApp[];
  displayOrder?: number;
  parentId?: string | null;
  apiKeyScope?: AgentKeyScope;
  instanceMetadata?: unknown;
  resourceMetadata?: unknown;
  now: Date;
}

/** Inserts an agent (the name-per-build trigger rejects a duplicate name with a unique violation). */
export async function insertAgent(q: Queryable, p: InsertAgentParams): Promise<WorkspaceAgent> {
  const { rows } = await q.query<WorkspaceAgent>(
    `INSERT INTO workspace_agents AS a (
       id, created_at, updated_at, name, resource_id, auth_token, architecture, operating_system, directory,
       environment_variables, connection_timeout_seconds, troubleshooting_url, motd_file, display_apps,
       display_order, parent_id, api_key_scope, instance_metadata, resource_metadata)
     VALUES ($1, $2, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
             coalesce($13::text[]::display_app[], '{vscode,vscode_insiders,web_terminal,ssh_helper,port_forwarding_helper}'),
             $14, $15, $16, $17, $18)
     RETURNING ${AGENT_SELECT}`,
    [
      p.id, p.now, p.name, p.resourceId, p.authToken, p.architecture, p.operatingSystem, p.directory ?? "",
      p.environmentVariables == null ? null : JSON.stringify(p.environmentVariables),
      p.connectionTimeoutSeconds ?? 0, p.troubleshootingUrl ?? "", p.motdFile ?? "", p.displayApps ?? null,
      p.displayOrder ?? 0, p.parentId ?? null, p.apiKeyScope ?? "all",
      p.instanceMetadata == null ? null : JSON.stringify(p.instanceMetadata),
      p.resourceMetadata == null ? null : JSON.stringify(p.resourceMetadata),
    ],
  );
  return rows[0]!;
}

/** The state a connection starts from (§1.8 Init), as stored by {@link connectAgent}. */
export interface AgentConnection {
  connectionGeneration: number;
  firstConnectedAt: Date;
  lastConnectedAt: Date;
  disconnectedAt: Date | null;
}

/**
 * The init write of a new connection (§1.8): first_connected_at kept or set to `now`,
 * last_connected_at = now, this replica, disconnected_at left as stored, and a new
 * connection_generation that later writes of this connection are guarded by.
 * Undefined when the agent is gone or deleted.
 */
export async function connectAgent(
  q: Queryable,
  p: { id: string; replicaId: string; now: Date },
): Promise<AgentConnection | undefined> {
  const { rows } = await q.query<AgentConnection>(
    `UPDATE workspace_agents SET
       first_connected_at = coalesce(first_connected_at, $3),
       last_connected_at = $3,
       last_connected_replica_id = $2,
       connection_generation = connection_generation + 1,
       updated_at = $3
     WHERE id = $1 AND NOT deleted
     RETURNING connection_generation AS "connectionGeneration", first_connected_at AS "firstConnectedAt",
               last_connected_at AS "lastConnectedAt", disconnected_at AS "disconnectedAt"`,
    [p.id, p.replicaId, p.now],
  );
  return rows[0];
}

/** One agent's connection columns (`UpdateWorkspaceAgentConnectionByID`). */
export interface AgentConnectionUpdate {
  id: string;
  firstConnectedAt: Date | null;
  lastConnectedAt: Date | null;
  disconnectedAt: Date | null;
  replicaId: string;
  updatedAt: Date;
  /** When set, the write applies only while the row's connection_generation still equals it. */
  generation?: number;
}

/** Writes one agent's connection columns. Returns whether the row was written. */
export async function updateAgentConnection(q: Queryable, u: AgentConnectionUpdate): Promise<boolean> {
  const { rowCount } = await q.query(
    `UPDATE workspace_agents SET
       first_connected_at = $2, last_connected_at = $3, disconnected_at = $4,
       last_connected_replica_id = $5, updated_at = $6
     WHERE id = $1 AND ($7::bigint IS NULL OR connection_generation = $7::bigint)`,
    [u.id, u.firstConnectedAt, u.lastConnectedAt, u.disconnectedAt, u.replicaId, u.updatedAt, u.generation ?? null],
  );
  return rowCount > 0;
}

/**
 * Writes many agents' connection columns in one statement (unnest of parallel arrays): the
 * heartbeat batcher's flush. An id given twice keeps its last update. Returns the ids written
 * (an update whose generation no longer matches is skipped).
 */
export async function updateAgentConnections(q: Queryable, updates: AgentConnectionUpdate[]): Promise<string[]> {
  const byId = new Map<string, AgentConnectionUpdate>();
  for (const u of updates) byId.set(u.id, u);
  if (byId.size === 0) return [];
  const list = [...byId.values()];
  const { rows } = await q.query<{ id: string }>(
    `UPDATE workspace_agents a SET
       first_connected_at = u.first_connected_at,
       last_connected_at = u.last_connected_at,
       disconnected_at = u.disconnected_at,
       last_connected_replica_id = u.replica_id,
       updated_at = u.updated_at
     FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[], $5::uuid[], $6::timestamptz[], $7::bigint[])
       AS u(id, first_connected_at, last_connected_at, disconnected_at, replica_id, updated_at, generation)
     WHERE a.id = u.id AND (u.generation IS NULL OR a.connection_generation = u.generation)
     RETURNING a.id`,
    [
      list.map((u) => u.id), list.map((u) => isoOrNull(u.firstConnectedAt)), list.map((u) => isoOrNull(u.lastConnectedAt)),
      list.map((u) => isoOrNull(u.disconnectedAt)), list.map((u) => u.replicaId), list.map((u) => isoOrNull(u.updatedAt)),
      list.map((u) => u.generation ?? null),
    ],
  );
  return rows.map((r) => r.id);
}

/**
 * The final write of a connection: sets disconnected_at only if the row still belongs to that
 * connection (same replica and generation), so a late disconnect never overwrites a newer one.
 * Returns whether it was written.
 */
export async function disconnectAgent(
  q: Queryable,
  p: { id: string; replicaId: string; generation: number; disconnectedAt: Date },
): Promise<boolean> {
  const { rowCount } = await q.query(
    `UPDATE workspace_agents SET disconnected_at = $4, updated_at = $4
     WHERE id = $1 AND last_connected_replica_id = $2 AND connection_generation = $3`,
    [p.id, p.replicaId, p.generation, p.disconnectedAt],
  );
  return rowCount > 0;
}

/** `UpdateWorkspaceAgentLifecycleStateByID`. */
export async function updateAgentLifecycle(
  q: Queryable,
  p: { id: string; lifecycleState: LifecycleState; startedAt: Date | null; readyAt: Date | null },
): Promise<void> {
  await q.query(
    "UPDATE workspace_agents SET lifecycle_state = $2, started_at = $3, ready_at = $4 WHERE id = $1",
    [p.id, p.lifecycleState, p.startedAt, p.readyAt],
  );
}

/** `UpdateWorkspaceAgentStartupByID`. */
export async function updateAgentStartup(
  q: Queryable,
  p: { id: string; version: string; expandedDirectory: string; subsystems: AgentSubsystem[]; apiVersion: string },
): Promise<void> {
  await q.query(
    "UPDATE workspace_agents SET version = $2, expanded_directory = $3, subsystems = $4::text[]::workspace_agent_subsystem[], api_version = $5 WHERE id = $1",
    [p.id, p.version, p.expandedDirectory, p.subsystems, p.apiVersion],
  );
}

/** Non-deleted sub-agents of an agent, with their tokens (ListSubAgents). */
export async function listSubAgents(q: Queryable, parentId: string): Promise<WorkspaceAgent[]> {
  const { rows } = await q.query<WorkspaceAgent>(
    `SELECT ${AGENT_SELECT} FROM workspace_agents a WHERE a.parent_id = $1 AND NOT a.deleted ORDER BY a.created_at, a.name`,
    [parentId],
  );
  return rows;
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
