import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { agentIdentityKey, type AgentIdentity } from "../auth/agent-identity.js";
import type { Queryable } from "../db/database.js";
import { getAgentById, type WorkspaceAgent } from "../db/queries/agents.js";
import { internal } from "./rpc-errors.js";

/** The caller of an RPC: who it authenticated as, and its agent row as it is now. */
export interface Caller {
  identity: AgentIdentity;
  agent: WorkspaceAgent;
}

/**
 * Re-reads the calling agent's row for one RPC, as coderd does for every call: a deleted agent
 * answers NotFound from then on, whatever its tunnel still holds.
 */
export type LoadCaller = (ctx: HandlerContext) => Promise<Caller>;

/**
 * Builds the {@link LoadCaller} every group uses: a by-id read that skips deleted rows. A missing
 * identity can't happen behind the endpoint or the plain-port admission; it answers
 * Unauthenticated rather than trusting anything.
 */
export function callerLoader(db: Queryable): LoadCaller {
  return async (ctx) => {
    const identity = callerIdentity(ctx);
    let agent: WorkspaceAgent | undefined;
    try {
      agent = await getAgentById(db, identity.agentId);
    } catch (err) {
      throw internal("get workspace agent", err);
    }
    if (agent === undefined) throw agentNotFound(identity.agentId);
    return { identity, agent };
  };
}

/**
 * Who the call authenticated as, without the re-read: for an RPC whose own statement re-reads the
 * agent row (and answers {@link agentNotFound} when it is gone), so the rule holds in one round trip.
 */
export function callerIdentity(ctx: HandlerContext): AgentIdentity {
  const identity = ctx.values.get(agentIdentityKey);
  if (identity === undefined) throw new ConnectError("no agent identity on this call", Code.Unauthenticated);
  return identity;
}

/** What every RPC answers once its agent is deleted. */
export function agentNotFound(agentId: string): ConnectError {
  return new ConnectError(`workspace agent ${agentId} not found`, Code.NotFound);
}
