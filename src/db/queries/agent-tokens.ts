import type { Queryable } from "../database.js";

/** Whose an agent token is: the agent, the build it was provisioned in, its workspace and owner. */
export interface TokenAgent {
  agentId: string;
  agentName: string;
  workspaceId: string;
  workspaceName: string;
  ownerId: string;
  ownerUsername: string;
  /** The build the agent belongs to. */
  buildId: string;
  buildNumber: number;
}

/** A token's agent and its workspace's latest build, which differs from `buildId` for an outdated agent. */
export interface TokenLookup extends TokenAgent {
  latestBuildId: string;
}

const TOKEN_AGENT_COLUMNS = `a.id AS "agentId", a.name AS "agentName", w.id AS "workspaceId", w.name AS "workspaceName",
            u.id AS "ownerId", u.username AS "ownerUsername", b.id AS "buildId", b.build_number AS "buildNumber",
            lb.id AS "latestBuildId"`;
const TOKEN_AGENT_JOINS = `JOIN workspace_resources r ON r.id = a.resource_id
     JOIN workspace_builds b ON b.job_id = r.job_id
     JOIN workspaces w ON w.id = b.workspace_id
     JOIN users u ON u.id = w.owner_id
     JOIN LATERAL (
       SELECT id FROM workspace_builds WHERE workspace_id = w.id ORDER BY build_number DESC LIMIT 1
     ) lb ON true`;

/**
 * Looks an agent up by its auth token in one query: agent → resource → build → workspace → owner,
 * plus the workspace's latest build. Deleted workspaces and deleted (sub-)agents give no row.
 */
export async function getTokenAgent(q: Queryable, token: string): Promise<TokenLookup | undefined> {
  const { rows } = await q.query<TokenLookup>(
    `SELECT ${TOKEN_AGENT_COLUMNS}
     FROM workspace_agents a
     ${TOKEN_AGENT_JOINS}
     WHERE a.auth_token = $1 AND NOT a.deleted AND NOT w.deleted`,
    [token],
  );
  return rows[0];
}

/** {@link getTokenAgent} for many tokens in one statement: each token's lookup, in order (undefined when none). */
export async function getTokenAgents(q: Queryable, tokens: readonly string[]): Promise<Array<TokenLookup | undefined>> {
  const { rows } = await q.query<TokenLookup & { token: string }>(
    `SELECT a.auth_token::text AS token, ${TOKEN_AGENT_COLUMNS}
     FROM workspace_agents a
     ${TOKEN_AGENT_JOINS}
     WHERE a.auth_token = ANY($1::uuid[]) AND NOT a.deleted AND NOT w.deleted`,
    [tokens],
  );
  const byToken = new Map<string, TokenLookup>();
  for (const { token, ...row } of rows) byToken.set(token, row);
  return tokens.map((t) => byToken.get(t));
}
