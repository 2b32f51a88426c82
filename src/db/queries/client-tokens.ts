import type { Queryable } from "../database.js";

/** What a client token lets its bearer reach. */
export interface ClientTokenGrant {
  tokenId: string;
  ownerId: string;
  workspaceId: string;
  /** The one agent it is bound to; null for any agent of the workspace. */
  agentId: string | null;
  expiresAt: Date;
}

/** Stores a new client token by its hash. */
export async function insertClientToken(
  q: Queryable,
  p: { id: string; tokenHash: Buffer; ownerId: string; workspaceId: string; agentId: string | null; createdAt: Date; expiresAt: Date },
): Promise<void> {
  await q.query(
    `INSERT INTO client_tokens (id, token_hash, owner_id, workspace_id, agent_id, created_at, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [p.id, p.tokenHash, p.ownerId, p.workspaceId, p.agentId, p.createdAt, p.expiresAt],
  );
}

/** Revokes the token with this hash. Returns whether such a token exists (revoked before or now). */
export async function revokeClientToken(q: Queryable, tokenHash: Buffer, now: Date): Promise<boolean> {
  const { rowCount } = await q.query(
    "UPDATE client_tokens SET revoked_at = coalesce(revoked_at, $2) WHERE token_hash = $1",
    [tokenHash, now],
  );
  return rowCount > 0;
}

/**
 * The grant of the token with this hash if it is usable at `now`: not expired, not revoked, its
 * workspace and (when bound to one) its agent not deleted. With `agentId`, also only if the
 * token reaches that agent: the one it is bound to, or a live agent of its workspace.
 */
export async function authenticateClientToken(
  q: Queryable,
  tokenHash: Buffer,
  now: Date,
  agentId?: string,
): Promise<ClientTokenGrant | undefined> {
  const { rows } = await q.query<ClientTokenGrant>(
    `SELECT t.id AS "tokenId", t.owner_id AS "ownerId", t.workspace_id AS "workspaceId", t.agent_id AS "agentId",
            t.expires_at AS "expiresAt"
     FROM client_tokens t
     JOIN workspaces w ON w.id = t.workspace_id AND NOT w.deleted
     LEFT JOIN workspace_agents bound ON bound.id = t.agent_id
     WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > $2
       AND (t.agent_id IS NULL OR NOT bound.deleted)
       AND ($3::uuid IS NULL OR t.agent_id = $3::uuid OR (t.agent_id IS NULL AND EXISTS (
         SELECT 1 FROM workspace_agents a
         JOIN workspace_resources r ON r.id = a.resource_id
         JOIN workspace_builds b ON b.job_id = r.job_id
         WHERE a.id = $3::uuid AND NOT a.deleted AND b.workspace_id = t.workspace_id)))`,
    [tokenHash, now, agentId ?? null],
  );
  return rows[0];
}
