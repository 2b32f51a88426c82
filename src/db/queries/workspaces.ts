import type { Queryable } from "../database.js";
import type { WorkspaceTransition } from "../enums.js";
import { selectList, type ColumnList } from "./columns.js";

/** A `workspaces` row (the columns agentgate uses). */
export interface Workspace {
  id: string;
  createdAt: Date;
  updatedAt: Date;
  ownerId: string;
  organizationId: string | null;
  templateId: string | null;
  deleted: boolean;
  name: string;
  autostartSchedule: string | null;
  ttl: number | null;
  lastUsedAt: Date;
}

/** @internal */
export const WORKSPACE_COLUMNS: ColumnList = [
  ["id", "id"], ["created_at", "createdAt"], ["updated_at", "updatedAt"], ["owner_id", "ownerId"],
  ["organization_id", "organizationId"], ["template_id", "templateId"], ["deleted", "deleted"],
  ["name", "name"], ["autostart_schedule", "autostartSchedule"], ["ttl", "ttl"], ["last_used_at", "lastUsedAt"],
];

/** The non-deleted workspace with this id. */
export async function getWorkspaceById(q: Queryable, id: string): Promise<Workspace | undefined> {
  const { rows } = await q.query<Workspace>(
    `SELECT ${selectList("w", WORKSPACE_COLUMNS)} FROM workspaces w WHERE w.id = $1 AND NOT w.deleted`,
    [id],
  );
  return rows[0];
}

/** The non-deleted workspace `name` of the (non-deleted) user `ownerUsername`, case-insensitively. */
export async function getWorkspaceByOwnerAndName(
  q: Queryable,
  ownerUsername: string,
  name: string,
): Promise<Workspace | undefined> {
  const { rows } = await q.query<Workspace>(
    `SELECT ${selectList("w", WORKSPACE_COLUMNS)}
     FROM workspaces w JOIN users u ON u.id = w.owner_id
     WHERE lower(u.username) = lower($1) AND NOT u.deleted AND lower(w.name) = lower($2) AND NOT w.deleted`,
    [ownerUsername, name],
  );
  return rows[0];
}

/** The workspace an agent belongs to (through resource and build), if neither is deleted. */
export async function getWorkspaceByAgentId(q: Queryable, agentId: string): Promise<Workspace | undefined> {
  const { rows } = await q.query<Workspace>(
    `SELECT ${selectList("w", WORKSPACE_COLUMNS)}
     FROM workspace_agents a
     JOIN workspace_resources r ON r.id = a.resource_id
     JOIN workspace_builds b ON b.job_id = r.job_id
     JOIN workspaces w ON w.id = b.workspace_id
     WHERE a.id = $1 AND NOT a.deleted AND NOT w.deleted`,
    [agentId],
  );
  return rows[0];
}

/** Inserts a workspace and returns it. */
export async function insertWorkspace(
  q: Queryable,
  p: { id: string; ownerId: string; name: string; now: Date },
): Promise<Workspace> {
  const { rows } = await q.query<Workspace>(
    `INSERT INTO workspaces AS w (id, owner_id, name, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $4)
     RETURNING ${selectList("w", WORKSPACE_COLUMNS)}`,
    [p.id, p.ownerId, p.name, p.now],
  );
  return rows[0]!;
}

/** Soft-deletes a workspace; its agents stop authenticating. Returns whether a live workspace was deleted. */
export async function softDeleteWorkspace(q: Queryable, id: string, now: Date): Promise<boolean> {
  const { rowCount } = await q.query("UPDATE workspaces SET deleted = true, updated_at = $2 WHERE id = $1 AND NOT deleted", [id, now]);
  return rowCount > 0;
}

/** Sets `last_used_at` on many workspaces in one statement (the usage tracker's flush). */
export async function updateWorkspacesLastUsed(q: Queryable, ids: string[], lastUsedAt: Date): Promise<void> {
  if (ids.length === 0) return;
  await q.query("UPDATE workspaces SET last_used_at = $2 WHERE id = ANY($1::uuid[])", [ids, lastUsedAt]);
}

/** A live workspace of an owner with the transition of its latest build (null before any build). */
export interface WorkspaceWithTransition {
  id: string;
  name: string;
  transition: WorkspaceTransition | null;
}

/** The owner's non-deleted workspaces with their latest build's transition, by name. */
export async function listOwnerWorkspaceTransitions(q: Queryable, ownerId: string): Promise<WorkspaceWithTransition[]> {
  const { rows } = await q.query<WorkspaceWithTransition>(
    `SELECT w.id, w.name, lb.transition::text AS transition
     FROM workspaces w
     LEFT JOIN LATERAL (
       SELECT transition FROM workspace_builds WHERE workspace_id = w.id ORDER BY build_number DESC LIMIT 1
     ) lb ON true
     WHERE w.owner_id = $1 AND NOT w.deleted
     ORDER BY lower(w.name)`,
    [ownerId],
  );
  return rows;
}
