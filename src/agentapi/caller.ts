import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { agentIdentityKey, type AgentIdentity } from "../auth/agent-identity.js";
import type { Queryable } from "../db/database.js";
import { getAgentById, type WorkspaceAgent } from "../db/queries/agents.js";
import type { IdentityCheck } from "../server/identity-watch.js";
import { internal } from "./rpc-errors.js";

/** The calling agent as its identity names it: what most RPCs need, known without a statement. */
export interface CallerAgent {
  id: string;
  name: string;
}

/** The caller of an RPC: who it authenticated as, and its agent. */
export interface Caller {
  identity: AgentIdentity;
  agent: CallerAgent;
}

/**
 * Checks that the caller may still be served (its agent and workspace not deleted, its token and
 * build current) and returns it. A tunnel's identity is held and kept current by the database's
 * identity events, so this costs no statement while they flow; NotFound once the agent is gone.
 */
export type LoadCaller = (ctx: HandlerContext) => Promise<Caller>;

/** The caller with its agent row as it is now, for an RPC that answers from the row's fields. */
export type LoadCallerRow = (ctx: HandlerContext) => Promise<{ identity: AgentIdentity; agent: WorkspaceAgent }>;

/**
 * Builds the {@link LoadCaller} every group uses. A missing identity can't happen behind the
 * endpoint or the plain-port admission; it answers Unauthenticated rather than trusting anything.
 */
export function callerLoader(identities: IdentityCheck): LoadCaller {
  return async (ctx) => {
    const identity = callerIdentity(ctx);
    await identities.check(identity);
    return { identity, agent: { id: identity.agentId, name: identity.agentName } };
  };
}

/** Builds the {@link LoadCallerRow}: the same check, then the agent row by id (deleted rows skipped). */
export function callerRowLoader(identities: IdentityCheck, db: Queryable): LoadCallerRow {
  return async (ctx) => {
    const identity = callerIdentity(ctx);
    await identities.check(identity);
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
 * Who the call authenticated as, without any check: for an RPC whose own statement re-reads the
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
