/**
 * Queries only tests use: they set up or read back state in ways the server never needs, built
 * on the server's own statements wherever one exists, so what they write is what the server writes.
 */
import type { Queryable } from "../../src/db/database.js";
import type { LogLevel } from "../../src/db/enums.js";
import { getAgentById, type WorkspaceAgent } from "../../src/db/queries/agents.js";
import { getTokenAgent, type TokenLookup } from "../../src/db/queries/agent-tokens.js";
import { getLatestBuild } from "../../src/db/queries/builds.js";
import { insertLogSources } from "../../src/db/queries/log-sources.js";
import { insertLogBatch, listLogsAfter, type AgentLog } from "../../src/db/queries/logs.js";
import { updateMetadataAndNotify, type MetadataUpdate } from "../../src/db/queries/metadata.js";
import { getUserById, type User } from "../../src/db/queries/users.js";
import { getWorkspaceById, type Workspace } from "../../src/db/queries/workspaces.js";

/** A token's agent with the rows around it, for assertions about what provisioning stored. */
export interface AgentOfToken extends TokenLookup {
  latestBuildNumber: number;
  agent: WorkspaceAgent;
  workspace: Workspace;
  owner: User;
}

/** The server's token lookup, with the agent, workspace and owner rows read as well. */
export async function getAgentByToken(q: Queryable, token: string): Promise<AgentOfToken | undefined> {
  const found = await getTokenAgent(q, token);
  if (found === undefined) return undefined;
  const [agent, workspace, owner, latest] = await Promise.all([
    getAgentById(q, found.agentId), getWorkspaceById(q, found.workspaceId), getUserById(q, found.ownerId), getLatestBuild(q, found.workspaceId),
  ]);
  if (agent === undefined || workspace === undefined || owner === undefined || latest === undefined) return undefined;
  return { ...found, latestBuildNumber: latest.buildNumber, agent, workspace, owner };
}

/** One agent's connection columns, as coderd's `UpdateWorkspaceAgentConnectionByID` sets them. */
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

/** Writes metadata results through the metadata batcher's statement; returns the rows updated. */
export async function updateMetadata(q: Queryable, updates: MetadataUpdate[]): Promise<number> {
  return (await updateMetadataAndNotify(q, updates)).rowsUpdated;
}

/** Result of {@link insertLogs}. */
export type InsertLogsResult =
  | { overflowed: false; logs: AgentLog[]; /** logs_length before this insert (0: these are the agent's first logs). */ previousLength: number }
  | { overflowed: true };

/**
 * Declares the log source for the agent if it isn't, inserts log lines through BatchCreateLogs' statement and reads the new rows back. If the batch
 * would pass the per-agent cap, or the agent is already marked overflowed, nothing is written and
 * the result says `overflowed`. A line over 1024 characters is an error, as in Coder.
 */
export async function insertLogs(
  q: Queryable,
  p: { agentId: string; logSourceId: string; createdAt: Date; lines: { output: string; level: LogLevel }[] },
): Promise<InsertLogsResult> {
  if (p.lines.length === 0) return { overflowed: false, logs: [], previousLength: -1 };
  // Lines go only under the agent's own sources: declare this one (a declared one is kept as it is).
  await insertLogSources(q, { agentId: p.agentId, createdAt: p.createdAt, sources: [{ id: p.logSourceId, displayName: "", icon: "" }] });
  const result = await insertLogBatch(q, p);
  switch (result.status) {
    case "stored": {
      const logs = await listLogsAfter(q, { agentId: p.agentId, afterId: result.firstId - 1, limit: result.lastId - result.firstId + 1 });
      return { overflowed: false, logs, previousLength: result.previousLength };
    }
    case "overflowed":
    case "already_overflowed":
      return { overflowed: true };
    default:
      throw new Error(`inserting logs: workspace agent ${p.agentId} not found`);
  }
}
