import { HttpError } from "./http-error.js";

/** What a token lookup returns: the agent joined with its build, the latest build, workspace and owner. */
export interface AgentTokenRow {
  agentId: string;
  agentName: string;
  buildId: string;
  buildNumber: number;
  latestBuildId: string;
  latestBuildNumber: number;
  workspaceId: string;
  workspaceName: string;
  ownerId: string;
  ownerUsername: string;
}

/** Looks an agent up by token, keeping only non-deleted agents of non-deleted workspaces; undefined when none. */
export type LookupAgentByToken = (token: string) => Promise<AgentTokenRow | undefined>;

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Resolves an agent token to its agent, with the failures and messages of agent-api.md §1.2
 * and contract C3–C5: 401 for a missing, malformed or unknown token (deleted workspaces and
 * agents included), 403 for an agent of a non-latest build, 500 when the database fails.
 */
export async function authenticateAgent(token: string, lookup: LookupAgentByToken): Promise<AgentTokenRow> {
  if (token === "") {
    throw new HttpError(401, { message: 'Cookie "coder_session_token" must be provided.' });
  }
  if (!UUID_PATTERN.test(token)) {
    throw new HttpError(401, {
      message: "Workspace agent token invalid.",
      detail: `An agent token must be a valid UUIDv4. (len ${token.length})`,
    });
  }
  let row: AgentTokenRow | undefined;
  try {
    row = await lookup(token.toLowerCase());
  } catch (err) {
    throw new HttpError(500, {
      message: "Internal error checking workspace agent authorization.",
      detail: err instanceof Error ? err.message : String(err),
    });
  }
  if (row === undefined) {
    throw new HttpError(401, {
      message: "Workspace agent not authorized.",
      detail:
        "The agent cannot authenticate until the workspace provision job has been completed. If the job is no longer running, this agent is invalid.",
    });
  }
  if (row.buildId !== row.latestBuildId) {
    throw new HttpError(403, { message: "Agent trying to connect from non-latest build.", detail: "build is outdated" });
  }
  return row;
}
