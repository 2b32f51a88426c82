import type { Queryable } from "../database.js";
import type { AgentKeyScope, AgentSubsystem, DisplayApp, LifecycleState } from "../enums.js";
import { selectList, type ColumnList } from "./columns.js";

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
  /** agentgate's addition: bumped on every connect; guards later writes of that connection. */
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

/** @internal Every column of `workspace_agents a`, aliased to {@link WorkspaceAgent}'s names. */
export const AGENT_SELECT = selectList("a", AGENT_COLUMNS);

/** The non-deleted agent with this id (each RPC re-reads its caller's with it). */
export async function getAgentById(q: Queryable, id: string): Promise<WorkspaceAgent | undefined> {
  const { rows } = await q.query<WorkspaceAgent>(`SELECT ${AGENT_SELECT} FROM workspace_agents a WHERE a.id = $1 AND NOT a.deleted`, [id]);
  return rows[0];
}

/** The non-deleted agents of a build, by name (reading a build's spec back). */
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
