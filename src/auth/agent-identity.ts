import { createContextKey } from "@connectrpc/connect";

/**
 * Who is calling: fixed for a tunnel at the upgrade, resolved per call on the plain port.
 * Handlers read it from the Connect context (`ctx.values.get(agentIdentityKey)`).
 */
export interface AgentIdentity {
  agentId: string;
  agentName: string;
  workspaceId: string;
  workspaceName: string;
  ownerId: string;
  ownerUsername: string;
  /** The build the agent belongs to; the tracker evicts the agent when it stops being the latest. */
  buildId: string;
  buildNumber: number;
  /** The negotiated Agent/Tailnet API version, e.g. "2.13". */
  apiVersion: string;
  /** The replica (server process) that serves this connection. */
  replicaId: string;
}

/** The Connect context key under which the caller's identity travels; undefined when unauthenticated. */
export const agentIdentityKey = createContextKey<AgentIdentity | undefined>(undefined, {
  description: "agentgate agent identity",
});

/** The identity of an authenticated agent row, for a connection on `replicaId` speaking `apiVersion`. */
export function identityOf(
  row: Omit<AgentIdentity, "apiVersion" | "replicaId">,
  apiVersion: string,
  replicaId: string,
): AgentIdentity {
  return {
    agentId: row.agentId,
    agentName: row.agentName,
    workspaceId: row.workspaceId,
    workspaceName: row.workspaceName,
    ownerId: row.ownerId,
    ownerUsername: row.ownerUsername,
    buildId: row.buildId,
    buildNumber: row.buildNumber,
    apiVersion,
    replicaId,
  };
}
