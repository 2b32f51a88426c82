import type { CoordinateRequest } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { agentAddresses, ipv6Set, parsePrefix } from "./agent-addresses.js";
import { uuidFromBytes } from "../agentapi/uuid-bytes.js";

/** A request this peer may not make; it ends the peer's stream, which counts as lost. */
export class CoordinateAuthError extends Error {
  override name = "CoordinateAuthError";
}

/** Checks one request of a peer before the coordinator acts on it; throws {@link CoordinateAuthError}. */
export type CoordinateeAuth = (req: CoordinateRequest) => void;

/** Every address must be a single host: `/128` (so an IPv4 address never passes). */
function requireHostAddresses(req: CoordinateRequest, allowed?: (address: string) => boolean): void {
  for (const text of req.updateSelf?.node?.addresses ?? []) {
    let prefix;
    try {
      prefix = parsePrefix(text);
    } catch (err) {
      throw new CoordinateAuthError((err as Error).message);
    }
    if (prefix.family !== "ipv6" || prefix.bits !== 128) {
      throw new CoordinateAuthError(`invalid address bits, expected 128, got ${prefix.bits}`);
    }
    if (allowed !== undefined && !allowed(prefix.address)) throw new CoordinateAuthError(`invalid node address, got ${prefix.address}`);
  }
}

/**
 * An agent's rules: it opens no tunnels (clients open them to it), and it may only claim its own
 * addresses, derived from its id, so no agent can pose as another.
 */
export function agentCoordinateeAuth(agentId: string): CoordinateeAuth {
  const own = ipv6Set(agentAddresses(agentId));
  return (req) => {
    if (req.addTunnel !== undefined) throw new CoordinateAuthError("agents cannot open tunnels");
    requireHostAddresses(req, own);
  };
}

/**
 * A client bound to one agent: tunnels only to that agent, single-host addresses, and no
 * ready_for_handshake (only the destination of a tunnel sends it).
 */
export function clientCoordinateeAuth(agentId: string): CoordinateeAuth {
  return (req) => {
    if (req.addTunnel !== undefined) {
      const dst = uuidFromBytes(req.addTunnel.id, "add tunnel");
      if (dst !== agentId) throw new CoordinateAuthError(`invalid agent id, expected ${agentId}, got ${dst}`);
    }
    requireHostAddresses(req);
    if (req.readyForHandshake.length > 0) throw new CoordinateAuthError("clients may not send ready_for_handshake");
  };
}
