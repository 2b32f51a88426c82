import { createContextKey } from "@connectrpc/connect";
import type { AgentIdentity } from "../auth/agent-identity.js";
import { agentCoordinateeAuth, clientCoordinateeAuth, type CoordinateeAuth } from "./coordinatee-auth.js";

/** Who is coordinating: fixed by the authenticated connection, never taken from a request. */
export interface PeerIdentity {
  /** UUID: the agent id for an agent, a server-chosen id for a client. */
  id: string;
  /** For logs: `<owner>-<workspace>-<agent>` for an agent. */
  name: string;
  kind: "agent" | "client";
  /** What this peer may ask for. */
  auth: CoordinateeAuth;
}

/**
 * A client connection, as the client endpoint authenticates it: a peer id the server chose for
 * the connection (or kept from a resume token), the one agent it may open a tunnel to, and the
 * owner on whose behalf it acts.
 */
export interface ClientIdentity {
  peerId: string;
  agentId: string;
  ownerId: string;
}

/** The Connect context key under which a client connection's identity travels. */
export const clientIdentityKey = createContextKey<ClientIdentity | undefined>(undefined, {
  description: "agentgate tailnet client identity",
});

/** An agent's peer: id = agent id, named `<owner>-<workspace>-<agent>` as coderd names it. */
export function agentPeer(identity: AgentIdentity): PeerIdentity {
  return {
    id: identity.agentId,
    name: `${identity.ownerUsername}-${identity.workspaceName}-${identity.agentName}`,
    kind: "agent",
    auth: agentCoordinateeAuth(identity.agentId),
  };
}

/** A client's peer, allowed to reach its one agent. */
export function clientPeer(identity: ClientIdentity): PeerIdentity {
  return {
    id: identity.peerId,
    name: `client-${identity.peerId}`,
    kind: "client",
    auth: clientCoordinateeAuth(identity.agentId),
  };
}
