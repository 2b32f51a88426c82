import { createContextKey } from "@connectrpc/connect";
import type { TokenAgent } from "../db/queries/agent-tokens.js";

/**
 * Who is calling: the agent its token names, and the connection it speaks on. Fixed for a
 * tunnel at the upgrade, resolved per call on the plain port; the one shape every part of the
 * server uses. Handlers read it from the Connect context (`ctx.values.get(agentIdentityKey)`).
 */
export interface AgentIdentity extends TokenAgent {
  /** The negotiated Agent/Tailnet API version, e.g. "2.13". */
  apiVersion: string;
  /** The replica (server process) that serves this connection. */
  replicaId: string;
}

/** The Connect context key under which the caller's identity travels; undefined when unauthenticated. */
export const agentIdentityKey = createContextKey<AgentIdentity | undefined>(undefined, {
  description: "agentgate agent identity",
});
