import { create, fromBinary } from "@bufbuild/protobuf";
import {
  CoordinateResponse_PeerUpdate_Kind as Kind,
  CoordinateResponse_PeerUpdateSchema,
  NodeSchema,
  type CoordinateResponse_PeerUpdate,
} from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { uuidToBytes } from "../agentapi/uuid-bytes.js";
import type { TailnetPeerRow, TailnetTunnel } from "../db/queries/tailnet.js";

/** What a peer's rows on all replicas say about it, by the best-row rules. */
export type PeerState =
  | { kind: Kind.NODE; node: Buffer }
  | { kind: Kind.LOST }
  | { kind: Kind.DISCONNECTED; reason: string };

/** Reason of a DISCONNECTED update about a peer whose tunnel went while the peer stayed. */
export const TUNNEL_REMOVED = "tunnel removed";
/** Reason of a DISCONNECTED update about a peer whose rows are all gone (cleaned up). */
const PEER_GONE = "disconnected";

/**
 * The best row of one peer: rows of replicas considered dead count as lost; a node beats lost;
 * among nodes the newest wins; without a node the newest of the lost and disconnected rows says
 * how the peer left. Undefined when there is no row at all.
 */
export function bestPeerState(rows: readonly TailnetPeerRow[], alive: (coordinatorId: string) => boolean): PeerState | undefined {
  let node: TailnetPeerRow | undefined;
  let other: TailnetPeerRow | undefined;
  for (const r of rows) {
    if (r.status === "ok" && r.node !== null && alive(r.coordinatorId)) {
      if (node === undefined || newer(r, node)) node = r;
    } else if (other === undefined || newer(r, other)) {
      other = r;
    }
  }
  if (node !== undefined) return { kind: Kind.NODE, node: node.node! };
  if (other === undefined) return undefined;
  return other.status === "disconnected" ? { kind: Kind.DISCONNECTED, reason: other.disconnectReason } : { kind: Kind.LOST };
}

/** Newer updated_at wins; the coordinator id breaks ties so every replica picks the same row. */
function newer(a: TailnetPeerRow, b: TailnetPeerRow): boolean {
  const d = a.updatedAt.getTime() - b.updatedAt.getTime();
  return d > 0 || (d === 0 && a.coordinatorId > b.coordinatorId);
}

/** Whom a peer shares tunnels with: either direction, and the destinations of its own. */
export interface TunnelPeers {
  peers: Set<string>;
  dsts: Set<string>;
}

/**
 * The tunnel peers of every peer the tunnels name, in one pass: a refresh of thousands of peers
 * must not scan every tunnel once per peer.
 */
export function tunnelPeersByPeer(tunnels: readonly TailnetTunnel[]): Map<string, TunnelPeers> {
  const byPeer = new Map<string, TunnelPeers>();
  const of = (id: string) => {
    let entry = byPeer.get(id);
    if (entry === undefined) byPeer.set(id, (entry = { peers: new Set(), dsts: new Set() }));
    return entry;
  };
  for (const t of tunnels) {
    if (t.src === t.dst) continue;
    const src = of(t.src);
    src.peers.add(t.dst);
    src.dsts.add(t.dst);
    of(t.dst).peers.add(t.src);
  }
  return byPeer;
}

/**
 * What a peer must be told so that its picture matches the database, given what it was told
 * before (`told`: the last node sent per peer, updated in place). Deduplicated: a node equal to
 * the last one sent, or LOST/DISCONNECTED about a peer it holds no node of, sends nothing; LOST
 * and DISCONNECTED clear the record.
 */
export function peerUpdates(
  tunnelPeers: ReadonlySet<string>,
  told: Map<string, Buffer>,
  stateOf: (id: string) => PeerState | undefined,
): CoordinateResponse_PeerUpdate[] {
  const out: CoordinateResponse_PeerUpdate[] = [];
  for (const id of tunnelPeers) {
    const state = stateOf(id) ?? { kind: Kind.DISCONNECTED, reason: PEER_GONE };
    const last = told.get(id);
    if (state.kind === Kind.NODE) {
      if (last !== undefined && last.equals(state.node)) continue;
      out.push(update(id, Kind.NODE, last === undefined ? "new" : "update", state.node));
      told.set(id, state.node);
    } else if (last !== undefined) {
      out.push(update(id, state.kind, state.kind === Kind.LOST ? "lost" : state.reason));
      told.delete(id);
    }
  }
  for (const id of told.keys()) {
    if (tunnelPeers.has(id)) continue;
    const state = stateOf(id);
    out.push(update(id, Kind.DISCONNECTED, state?.kind === Kind.DISCONNECTED ? state.reason : TUNNEL_REMOVED));
    told.delete(id);
  }
  return out;
}

/** One peer update; a node is decoded from the bytes the database holds. */
export function update(id: string, kind: Kind, reason: string, node?: Buffer): CoordinateResponse_PeerUpdate {
  return create(CoordinateResponse_PeerUpdateSchema, {
    id: uuidToBytes(id),
    kind,
    reason,
    ...(node !== undefined ? { node: fromBinary(NodeSchema, node) } : {}),
  });
}
