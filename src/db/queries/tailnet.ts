import type { Queryable } from "../database.js";

/**
 * The tailnet coordinator's tables (`tailnet_coordinators`, `tailnet_peers`, `tailnet_tunnels`),
 * shared by every replica. Every write publishes on the channels below in the same statement, so
 * the notification goes out when, and only if, the write commits. Each statement takes many peers
 * at once: the coordinator batches what its peers ask for.
 */

/** NOTIFY channels of the coordinator and their payloads. */
export const TAILNET_CHANNELS = {
  /** Payload: the replica's id. */
  heartbeat: "tailnet_coordinator_heartbeat",
  /** Payload: the peer's id. */
  peerUpdate: "tailnet_peer_update",
  /** Payload: `"src,dst"`. */
  tunnelUpdate: "tailnet_tunnel_update",
  /** Payload: `"to,from"`. */
  readyForHandshake: "tailnet_ready_for_handshake",
} as const;

/** A `tailnet_peers.status`. */
export type TailnetPeerStatus = "ok" | "lost" | "disconnected";

/** One `tailnet_peers` row: a peer as one replica knows it. */
export interface TailnetPeerRow {
  id: string;
  coordinatorId: string;
  updatedAt: Date;
  /** Protobuf binary of `coder.tailnet.v2.Node`; null until the peer sent one. */
  node: Buffer | null;
  status: TailnetPeerStatus;
  /** Why a `disconnected` peer was removed; empty otherwise. */
  disconnectReason: string;
}

/** A directed tunnel src → dst. */
export interface TailnetTunnel {
  src: string;
  dst: string;
}

const PEER_COLUMNS = `p.id, p.coordinator_id AS "coordinatorId", p.updated_at AS "updatedAt", p.node,
  p.status::text AS status, p.disconnect_reason AS "disconnectReason"`;

/** Records a heartbeat of `coordinatorId` (creating its row) and announces it. */
export async function heartbeatCoordinator(q: Queryable, coordinatorId: string): Promise<void> {
  await q.query(
    `WITH up AS (
       INSERT INTO tailnet_coordinators (id, heartbeat_at) VALUES ($1, now())
       ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()
       RETURNING id
     )
     SELECT pg_notify('${TAILNET_CHANNELS.heartbeat}', id::text) FROM up`,
    [coordinatorId],
  );
}

/** Replicas whose last heartbeat is at most `withinMs` old, with that age as the database measures it. */
export async function listLiveCoordinators(q: Queryable, withinMs: number): Promise<{ id: string; ageMs: number }[]> {
  const { rows } = await q.query<{ id: string; ageMs: number }>(
    `SELECT id, (extract(epoch FROM now() - heartbeat_at) * 1000)::float8 AS "ageMs"
     FROM tailnet_coordinators WHERE heartbeat_at > now() - $1::float8 * interval '1 millisecond'`,
    [withinMs],
  );
  return rows;
}

/** Stores each peer's node on `coordinatorId` with status ok. Ids must be distinct. */
export async function upsertPeerNodes(q: Queryable, coordinatorId: string, peers: { id: string; node: Buffer }[]): Promise<void> {
  if (peers.length === 0) return;
  await q.query(
    `WITH up AS (
       INSERT INTO tailnet_peers AS p (id, coordinator_id, updated_at, node, status, disconnect_reason)
       SELECT u.id, $1::uuid, now(), decode(u.node, 'hex'), 'ok', ''
       FROM unnest($2::uuid[], $3::text[]) AS u(id, node)
       ON CONFLICT (id, coordinator_id) DO UPDATE
         SET updated_at = now(), node = EXCLUDED.node, status = 'ok', disconnect_reason = ''
       RETURNING p.id
     )
     SELECT pg_notify('${TAILNET_CHANNELS.peerUpdate}', id::text) FROM up`,
    [coordinatorId, peers.map((p) => p.id), peers.map((p) => p.node.toString("hex"))],
  );
}

/** Marks peers of `coordinatorId` lost, keeping their nodes and tunnels. */
export async function markPeersLost(q: Queryable, coordinatorId: string, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await q.query(
    `WITH up AS (
       UPDATE tailnet_peers SET status = 'lost', updated_at = now()
       WHERE coordinator_id = $1 AND id = ANY($2::uuid[]) AND status = 'ok'
       RETURNING id
     )
     SELECT pg_notify('${TAILNET_CHANNELS.peerUpdate}', id::text) FROM up`,
    [coordinatorId, ids],
  );
}

/**
 * Removes peers of `coordinatorId` on purpose: each row becomes `disconnected` with its reason,
 * and the tunnels it opened through this replica go.
 */
export async function disconnectPeers(q: Queryable, coordinatorId: string, peers: { id: string; reason: string }[]): Promise<void> {
  if (peers.length === 0) return;
  await q.query(
    `WITH d AS (
       SELECT * FROM unnest($2::uuid[], $3::text[]) AS u(id, reason)
     ), up AS (
       UPDATE tailnet_peers p SET status = 'disconnected', disconnect_reason = d.reason, updated_at = now()
       FROM d WHERE p.coordinator_id = $1 AND p.id = d.id
       RETURNING p.id
     ), gone AS (
       DELETE FROM tailnet_tunnels t USING d WHERE t.coordinator_id = $1 AND t.src_id = d.id
       RETURNING t.src_id, t.dst_id
     )
     SELECT pg_notify('${TAILNET_CHANNELS.peerUpdate}', id::text) FROM up
     UNION ALL
     SELECT pg_notify('${TAILNET_CHANNELS.tunnelUpdate}', src_id::text || ',' || dst_id::text) FROM gone`,
    [coordinatorId, peers.map((p) => p.id), peers.map((p) => p.reason)],
  );
}

/** Adds tunnels opened through `coordinatorId`. Pairs must be distinct. */
export async function addTunnels(q: Queryable, coordinatorId: string, tunnels: TailnetTunnel[]): Promise<void> {
  if (tunnels.length === 0) return;
  await q.query(
    `WITH up AS (
       INSERT INTO tailnet_tunnels (coordinator_id, src_id, dst_id, updated_at)
       SELECT $1::uuid, u.src, u.dst, now() FROM unnest($2::uuid[], $3::uuid[]) AS u(src, dst)
       ON CONFLICT (coordinator_id, src_id, dst_id) DO UPDATE SET updated_at = now()
       RETURNING src_id, dst_id
     )
     SELECT pg_notify('${TAILNET_CHANNELS.tunnelUpdate}', src_id::text || ',' || dst_id::text) FROM up`,
    [coordinatorId, tunnels.map((t) => t.src), tunnels.map((t) => t.dst)],
  );
}

/**
 * Removes tunnels on every replica: the source says it no longer wants them, whichever replica
 * it opened them through before a reconnect.
 */
export async function removeTunnels(q: Queryable, tunnels: TailnetTunnel[]): Promise<void> {
  if (tunnels.length === 0) return;
  await q.query(
    `WITH gone AS (
       DELETE FROM tailnet_tunnels t USING unnest($1::uuid[], $2::uuid[]) AS u(src, dst)
       WHERE t.src_id = u.src AND t.dst_id = u.dst
       RETURNING t.src_id, t.dst_id
     )
     SELECT pg_notify('${TAILNET_CHANNELS.tunnelUpdate}', src_id::text || ',' || dst_id::text) FROM gone`,
    [tunnels.map((t) => t.src), tunnels.map((t) => t.dst)],
  );
}

/** Asks the replica serving `to` to tell it that `from` is ready for a handshake. */
export async function publishReadyForHandshake(q: Queryable, pairs: { to: string; from: string }[]): Promise<void> {
  if (pairs.length === 0) return;
  await q.query(
    `SELECT pg_notify('${TAILNET_CHANNELS.readyForHandshake}', u.to_id::text || ',' || u.from_id::text)
     FROM unnest($1::uuid[], $2::uuid[]) AS u(to_id, from_id)`,
    [pairs.map((p) => p.to), pairs.map((p) => p.from)],
  );
}

/** What {@link readBindings} returns. */
export interface TailnetBindings {
  /** Every tunnel (from any replica) with one of the peers as src or dst, each pair once. */
  tunnels: TailnetTunnel[];
  /** Every row (from any replica) of the peers in those tunnels and of the extra ids. */
  rows: TailnetPeerRow[];
}

/**
 * The tunnels of many peers and the rows of everyone at their other ends, in one statement: what
 * a replica needs to work out what each of its peers should know. `extraIds` are peers no longer
 * in a tunnel that someone was told about, whose rows say how they left.
 */
export async function readBindings(q: Queryable, peerIds: string[], extraIds: string[]): Promise<TailnetBindings> {
  if (peerIds.length === 0) return { tunnels: [], rows: [] };
  const { rows } = await q.query<{ kind: "t" | "p"; a: string; b: string; at: Date | null; node: Buffer | null; status: TailnetPeerStatus | null; reason: string | null }>(
    `WITH t AS (
       SELECT DISTINCT src_id, dst_id FROM tailnet_tunnels
       WHERE src_id = ANY($1::uuid[]) OR dst_id = ANY($1::uuid[])
     ), ids AS (
       SELECT src_id AS id FROM t UNION SELECT dst_id FROM t UNION SELECT unnest($2::uuid[])
     )
     SELECT 't' AS kind, src_id AS a, dst_id AS b, NULL::timestamptz AS at, NULL::bytea AS node, NULL::text AS status, NULL::text AS reason
     FROM t
     UNION ALL
     SELECT 'p', p.id, p.coordinator_id, p.updated_at, p.node, p.status::text, p.disconnect_reason
     FROM tailnet_peers p JOIN ids ON ids.id = p.id`,
    [peerIds, extraIds],
  );
  const out: TailnetBindings = { tunnels: [], rows: [] };
  for (const r of rows) {
    if (r.kind === "t") out.tunnels.push({ src: r.a, dst: r.b });
    else out.rows.push({ id: r.a, coordinatorId: r.b, updatedAt: r.at!, node: r.node, status: r.status!, disconnectReason: r.reason! });
  }
  return out;
}

/** Every row of one peer, from any replica. */
export async function listPeerRows(q: Queryable, id: string): Promise<TailnetPeerRow[]> {
  const { rows } = await q.query<TailnetPeerRow>(`SELECT ${PEER_COLUMNS} FROM tailnet_peers p WHERE p.id = $1`, [id]);
  return rows;
}

/**
 * Deletes what is older than `retentionMs`: replicas not heard from (their rows go with them),
 * lost and disconnected peers, and tunnels whose source has no row left on their replica.
 * Returns how many rows of each went.
 */
export async function cleanupTailnet(q: Queryable, retentionMs: number): Promise<{ coordinators: number; peers: number; tunnels: number }> {
  const cutoff = "now() - $1::float8 * interval '1 millisecond'";
  const coordinators = await q.query(`DELETE FROM tailnet_coordinators WHERE heartbeat_at < ${cutoff}`, [retentionMs]);
  const peers = await q.query(`DELETE FROM tailnet_peers WHERE status <> 'ok' AND updated_at < ${cutoff}`, [retentionMs]);
  const tunnels = await q.query(
    `DELETE FROM tailnet_tunnels t WHERE t.updated_at < ${cutoff}
       AND NOT EXISTS (SELECT 1 FROM tailnet_peers p WHERE p.id = t.src_id AND p.coordinator_id = t.coordinator_id)`,
    [retentionMs],
  );
  return { coordinators: coordinators.rowCount, peers: peers.rowCount, tunnels: tunnels.rowCount };
}

/**
 * The resume-token HMAC key: `candidate` is stored if no replica stored one before, and the key
 * every replica shares is returned.
 */
export async function getOrCreateResumeTokenKey(q: Queryable, candidate: Buffer): Promise<Buffer> {
  await q.query("INSERT INTO tailnet_resume_token_key (id, key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING", [candidate]);
  const { rows } = await q.query<{ key: Buffer }>("SELECT key FROM tailnet_resume_token_key WHERE id = 1");
  return rows[0]!.key;
}
