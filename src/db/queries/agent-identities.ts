import type { Queryable } from "../database.js";

/** An identity to re-check: the agent and the token it authenticated with. */
export interface HeldIdentity {
  agentId: string;
  token: string;
}

/** What the database says now of a {@link HeldIdentity} whose agent and workspace still exist. */
export interface IdentityState {
  /** Whether the agent's token is still the one it authenticated with. */
  tokenMatches: boolean;
  /** The workspace's latest build; an agent of any other build is outdated. */
  latestBuildId: string;
}

/**
 * Re-checks many held identities in one statement: for each, in order, its state, or undefined
 * when the agent or its workspace is deleted (or gone). The sweep of every live tunnel and the
 * per-RPC fallback both use it.
 */
export async function checkHeldIdentities(q: Queryable, held: readonly HeldIdentity[]): Promise<(IdentityState | undefined)[]> {
  if (held.length === 0) return [];
  const { rows } = await q.query<IdentityState & { i: number }>(
    `SELECT u.i::int AS i, a.auth_token = u.token AS "tokenMatches", lb.id AS "latestBuildId"
     FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS u(id, token, i)
     JOIN workspace_agents a ON a.id = u.id AND NOT a.deleted
     JOIN workspace_resources r ON r.id = a.resource_id
     JOIN workspace_builds b ON b.job_id = r.job_id
     JOIN workspaces w ON w.id = b.workspace_id AND NOT w.deleted
     JOIN LATERAL (
       SELECT id FROM workspace_builds WHERE workspace_id = w.id ORDER BY build_number DESC LIMIT 1
     ) lb ON true`,
    [held.map((h) => h.agentId), held.map((h) => h.token)],
  );
  const out = new Array<IdentityState | undefined>(held.length).fill(undefined);
  for (const { i, tokenMatches, latestBuildId } of rows) out[i - 1] = { tokenMatches, latestBuildId };
  return out;
}
