import { randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type {
  IssueClientTokenRequest,
  IssueClientTokenResponseSchema,
  RevokeClientTokenRequest,
} from "../../gen/agentgate/control/v1/control_pb.js";
import type { Database } from "../db/database.js";
import { insertClientToken, revokeClientToken } from "../db/queries/client-tokens.js";
import { getWorkspaceByAgentId } from "../db/queries/workspaces.js";
import { resolveWorkspace, UUID_PATTERN } from "../provision/provision.js";
import { hashClientToken, newClientToken } from "../tailnet/client-token.js";
import { toConnectError } from "./errors.js";

/** A client token's lifetime when the request gives none. */
export const DEFAULT_CLIENT_TOKEN_TTL_MS = 60 * 60 * 1000;
/** The longest lifetime a client token may have: long-lived secrets belong in a rotation, not here. */
export const MAX_CLIENT_TOKEN_TTL_MS = 30 * 24 * 60 * 60 * 1000;

/** IssueClientToken and RevokeClientToken. */
export function clientTokenHandlers(db: Database) {
  return {
    async issueClientToken(req: IssueClientTokenRequest): Promise<MessageInitShape<typeof IssueClientTokenResponseSchema>> {
      const ttlMs = req.ttl === undefined ? DEFAULT_CLIENT_TOKEN_TTL_MS : durationMs(req.ttl);
      if (!(ttlMs > 0 && ttlMs <= MAX_CLIENT_TOKEN_TTL_MS)) {
        throw new ConnectError(`ttl must be more than 0 and at most ${MAX_CLIENT_TOKEN_TTL_MS / 86_400_000} days`, Code.InvalidArgument);
      }
      const target = await resolveTarget(db, req.target);
      const token = newClientToken();
      const now = new Date();
      const expiresAt = new Date(now.getTime() + ttlMs);
      await insertClientToken(db, { id: randomUUID(), tokenHash: hashClientToken(token), ...target, createdAt: now, expiresAt });
      return { token, expiresAt: timestampFromDate(expiresAt) };
    },
    async revokeClientToken(req: RevokeClientTokenRequest): Promise<Record<string, never>> {
      if (!(await revokeClientToken(db, hashClientToken(req.token), new Date()))) throw new ConnectError("client token not found", Code.NotFound);
      return {};
    },
  };
}

/** The owner, workspace and (for an agent target) agent a token is bound to. */
async function resolveTarget(
  db: Database,
  target: IssueClientTokenRequest["target"],
): Promise<{ ownerId: string; workspaceId: string; agentId: string | null }> {
  switch (target.case) {
    case "agentId": {
      if (!UUID_PATTERN.test(target.value)) throw new ConnectError(`agent_id "${target.value}" is not a UUID`, Code.InvalidArgument);
      const agentId = target.value.toLowerCase();
      const workspace = await getWorkspaceByAgentId(db, agentId);
      if (workspace === undefined) throw new ConnectError(`agent ${agentId} not found`, Code.NotFound);
      return { ownerId: workspace.ownerId, workspaceId: workspace.id, agentId };
    }
    case "workspace": {
      const workspace = await resolveWorkspace(db, target.value).catch((err: unknown) => {
        throw toConnectError(err);
      });
      return { ownerId: workspace.ownerId, workspaceId: workspace.id, agentId: null };
    }
    default:
      throw new ConnectError("agent_id or workspace is required", Code.InvalidArgument);
  }
}
