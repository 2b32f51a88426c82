import { randomUUID } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { extractToken } from "../auth/token.js";
import { sameToken } from "../control/admin-auth.js";
import type { Queryable } from "../db/database.js";
import { isDatabaseUnavailable } from "../db/errors.js";
import { getWorkspaceByAgentId } from "../db/queries/workspaces.js";
import { HttpError } from "../http/http-error.js";
import { authenticateClient } from "../tailnet/client-token.js";
import type { ClientIdentity } from "../tailnet/peer-identity.js";
import { ResumeTokenError, type ResumeTokens } from "../tailnet/resume-token.js";
import { isUuid } from "../uuid.js";
import { negotiateApiVersion } from "./api-version.js";

/** The client coordination route: `GET /api/v2/workspaceagents/{agent_id}/coordinate?version=2.N`. */
export const CLIENT_COORDINATE_PATH = /^\/api\/v2\/workspaceagents\/([^/]+)\/coordinate$/;

/** The API version a client that names none asks for, as coderd assumes: 1.0, which is no longer served. */
const CLIENT_DEFAULT_VERSION = "1.0";

/** What client admission reads. */
export interface ClientAdmissionOptions {
  db: Queryable;
  /** The operator's token; it reaches every agent. */
  adminToken: string | undefined;
  resumeTokens: ResumeTokens;
}

/** A client's dial as admission sees it. */
export interface ClientCredentials {
  headers: IncomingHttpHeaders;
  url: URL;
  /** The `{agent_id}` of the path. */
  agentId: string;
}

/**
 * Admits a client to coordinate with one agent: the agent id must be a UUID (400); the token (the
 * agent endpoint's places: cookie, query, `Coder-Session-Token`, Bearer) must be the admin token
 * or a client token usable now for that agent (401; 404 for an agent the admin token can't find);
 * the version must be served (400); a `resume_token`, if given, must be valid (401) and gives back
 * its peer id, else the connection gets a fresh one. Throws {@link HttpError}.
 */
export async function admitClient(credentials: ClientCredentials, options: ClientAdmissionOptions): Promise<ClientIdentity> {
  const { headers, url } = credentials;
  if (!isUuid(credentials.agentId)) {
    throw new HttpError(400, { message: `Invalid UUID "${credentials.agentId}".`, validations: [{ field: "workspaceagent", detail: "must be a UUID" }] });
  }
  const agentId = credentials.agentId.toLowerCase();
  const token = extractToken(headers, url);
  if (token === "") throw new HttpError(401, { message: 'Cookie "coder_session_token" must be provided.' });
  const ownerId = await databaseStep("authorizing the client", () => ownerFor(token, agentId, options));
  negotiateApiVersion(url.searchParams.get("version") || CLIENT_DEFAULT_VERSION);
  const resumeToken = url.searchParams.get("resume_token");
  const peerId = resumeToken ? await resumedPeer(resumeToken, options.resumeTokens) : randomUUID();
  return { peerId, agentId, ownerId };
}

/** The owner on whose behalf the token acts for `agentId`. */
async function ownerFor(token: string, agentId: string, options: ClientAdmissionOptions): Promise<string> {
  if (options.adminToken !== undefined && sameToken(token, options.adminToken)) {
    const workspace = await getWorkspaceByAgentId(options.db, agentId);
    if (workspace === undefined) throw new HttpError(404, { message: "Workspace agent not found.", detail: `no live agent ${agentId}` });
    return workspace.ownerId;
  }
  const grant = await authenticateClient(options.db, token, agentId);
  if (grant === undefined) {
    throw new HttpError(401, {
      message: "Client not authorized.",
      detail: "The token is not the admin token nor a client token for this agent that is usable now (unknown, expired, revoked, or its workspace deleted).",
    });
  }
  return grant.ownerId;
}

async function resumedPeer(token: string, resumeTokens: ResumeTokens): Promise<string> {
  try {
    return await resumeTokens.verify(token);
  } catch (err) {
    if (err instanceof ResumeTokenError) throw new HttpError(401, { message: "Invalid resume token.", detail: err.message });
    throw err;
  }
}

/**
 * A database failure during admission: 503 when the database can't be reached (try again), else
 * 500. The database's own error is the cause, for the log only: its text names the database.
 */
async function databaseStep<T>(what: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (err instanceof HttpError) throw err;
    if (isDatabaseUnavailable(err)) throw new HttpError(503, { message: "Database unavailable, try again later.", detail: `${what} can't be done now` }, { cause: err });
    throw new HttpError(500, { message: `Internal error ${what}.` }, { cause: err });
  }
}
