import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { agentIdentityKey, type AgentIdentity } from "../auth/agent-identity.js";
import type { WorkspaceAgent } from "../db/queries/agents.js";

/** The caller of an RPC: who it authenticated as, and its agent row as it is now. */
export interface Caller {
  identity: AgentIdentity;
  agent: WorkspaceAgent;
}

/** Re-reads the calling agent's row for one RPC (agent-api.md §1.7); NotFound once it is deleted. */
export type LoadCaller = (ctx: HandlerContext) => Promise<Caller>;

/**
 * Builds the {@link LoadCaller} every group uses, from a by-id lookup that skips deleted rows. A
 * missing identity can't happen behind the endpoint or the plain-port interceptor; it answers
 * Unauthenticated rather than trusting anything.
 */
export function callerLoader(getAgentById: (id: string) => Promise<WorkspaceAgent | undefined>): LoadCaller {
  return async (ctx) => {
    const identity = callerIdentity(ctx);
    let agent: WorkspaceAgent | undefined;
    try {
      agent = await getAgentById(identity.agentId);
    } catch (err) {
      throw internal("get workspace agent", err);
    }
    if (agent === undefined) throw agentNotFound(identity.agentId);
    return { identity, agent };
  };
}

/**
 * Who the call authenticated as, without the re-read: for an RPC whose own statement re-reads the
 * agent row (and answers {@link agentNotFound} when it is gone), so §1.7 still holds in one round trip.
 */
export function callerIdentity(ctx: HandlerContext): AgentIdentity {
  const identity = ctx.values.get(agentIdentityKey);
  if (identity === undefined) throw new ConnectError("no agent identity on this call", Code.Unauthenticated);
  return identity;
}

/** What every RPC answers once its agent is deleted (agent-api.md §1.7). */
export function agentNotFound(agentId: string): ConnectError {
  return new ConnectError(`workspace agent ${agentId} not found`, Code.NotFound);
}

/** A database (or other unexpected) failure as Internal, with what was being done: "fetching …: <cause>". */
export function internal(what: string, err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  return new ConnectError(`${what}: ${err instanceof Error ? err.message : String(err)}`, Code.Internal, undefined, undefined, err);
}

/** A request that fails validation. */
export function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}
