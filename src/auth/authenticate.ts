import type { TokenAgent, TokenLookup } from "../db/queries/agent-tokens.js";
import { isDatabaseUnavailable } from "../db/errors.js";
import { HttpError } from "../http/http-error.js";
import { isUuid } from "../uuid.js";

/** Looks an agent up by token, keeping only non-deleted agents of non-deleted workspaces; undefined when none. */
export type LookupAgentByToken = (token: string) => Promise<TokenLookup | undefined>;

/**
 * Resolves an agent token to its agent, with coderd's failures and messages: 401 for a missing,
 * malformed or unknown token (deleted workspaces and agents included), 403 for an agent of a
 * build that is no longer the workspace's latest, 503 when the database can't be reached, 500
 * when it fails otherwise. Neither names the database's error: the caller is not yet known.
 */
export async function authenticateAgent(token: string, lookup: LookupAgentByToken): Promise<TokenAgent> {
  if (token === "") {
    throw new HttpError(401, { message: 'Cookie "coder_session_token" must be provided.' });
  }
  if (!isUuid(token)) {
    throw new HttpError(401, {
      message: "Workspace agent token invalid.",
      detail: `An agent token must be a valid UUIDv4. (len ${token.length})`,
    });
  }
  let row: TokenLookup | undefined;
  try {
    row = await lookup(token.toLowerCase());
  } catch (err) {
    if (isDatabaseUnavailable(err)) {
      throw new HttpError(503, { message: "Database unavailable, try again later.", detail: "the workspace agent's token can't be checked now" }, { cause: err });
    }
    throw new HttpError(500, { message: "Internal error checking workspace agent authorization." }, { cause: err });
  }
  if (row === undefined) {
    throw new HttpError(401, {
      message: "Workspace agent not authorized.",
      detail: "No agent has this token: it is unknown, or its workspace or agent was deleted.",
    });
  }
  const { latestBuildId, ...agent } = row;
  if (agent.buildId !== latestBuildId) {
    throw new HttpError(403, { message: "Agent trying to connect from non-latest build.", detail: "build is outdated" });
  }
  return agent;
}
