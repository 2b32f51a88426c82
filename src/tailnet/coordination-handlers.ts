import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Tailnet } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { uuidFromBytes } from "../agentapi/uuid-bytes.js";
import { agentIdentityKey } from "../auth/agent-identity.js";
import type { Coordinator } from "./coordinator.js";
import { agentPeer, clientIdentityKey, clientPeer, type ClientIdentity, type PeerIdentity } from "./peer-identity.js";
import type { ResumeTokens } from "./resume-token.js";
import { workspaceUpdates, type WorkspaceUpdatesDeps } from "./workspace-updates.js";

/** What Coordinate, RefreshResumeToken and WorkspaceUpdates need. */
export interface CoordinationDeps extends WorkspaceUpdatesDeps {
  coordinator: Coordinator;
  resumeTokens: ResumeTokens;
}

/**
 * Coordinate for agents (peer id = agent id) and clients (the peer the client endpoint put in the
 * context); RefreshResumeToken and WorkspaceUpdates for clients only: on an agent connection
 * they are not provided, as coderd has them.
 */
export function coordinationHandlers(deps: CoordinationDeps): Pick<ServiceImpl<typeof Tailnet>, "coordinate" | "refreshResumeToken" | "workspaceUpdates"> {
  return {
    coordinate(requests, ctx) {
      return deps.coordinator.coordinate(peerOf(ctx), requests, ctx.signal);
    },
    async refreshResumeToken(_req, ctx) {
      return deps.resumeTokens.issue(clientOf(ctx, "RefreshResumeToken").peerId);
    },
    async *workspaceUpdates(req, ctx) {
      const client = clientOf(ctx, "WorkspaceUpdates");
      const ownerId = uuidFromBytes(req.workspaceOwnerId, "workspace owner id");
      if (ownerId !== client.ownerId) throw new ConnectError("not allowed to watch another owner's workspaces", Code.PermissionDenied);
      yield* workspaceUpdates(deps, ownerId, ctx.signal);
    },
  };
}

function peerOf(ctx: HandlerContext): PeerIdentity {
  const client = ctx.values.get(clientIdentityKey);
  if (client !== undefined) return clientPeer(client);
  const agent = ctx.values.get(agentIdentityKey);
  if (agent !== undefined) return agentPeer(agent);
  throw new ConnectError("unauthenticated", Code.Unauthenticated);
}

function clientOf(ctx: HandlerContext, method: string): ClientIdentity {
  const client = ctx.values.get(clientIdentityKey);
  if (client === undefined) throw new ConnectError(`${method} is served to clients, not on the agent connection`, Code.Unimplemented);
  return client;
}
