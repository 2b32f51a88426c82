import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  CoordinateResponse_PeerUpdate_Kind as Kind,
  CoordinateResponseSchema,
  NodeSchema,
  type CoordinateRequest,
  type CoordinateResponse,
  type Node,
} from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { uuidFromBytes } from "../agentapi/uuid-bytes.js";
import type { Database } from "../db/database.js";
import type { Pubsub } from "../db/pubsub.js";
import { cleanupTailnet, listLiveCoordinators, listPeerRows, readBindings, TAILNET_CHANNELS, type TailnetPeerRow } from "../db/queries/tailnet.js";
import type { Logger } from "../log.js";
import { Wakeup } from "../wakeup.js";
import { CoordinateAuthError } from "./coordinatee-auth.js";
import { CoordinatorWrites, type CoordinatorWrite } from "./coordinator-writes.js";
import { LocalPeer, MAX_NODE_BYTES } from "./local-peer.js";
import type { PeerIdentity } from "./peer-identity.js";
import { bestPeerState, peerUpdates, tunnelPeersByPeer, update } from "./peer-view.js";
import { HeartbeatLoop, ReplicaLiveness } from "./replica-heartbeats.js";

/** The error a peer gets when its replica can't write heartbeats, and a new stream gets at once. */
export const UNHEALTHY_ERROR = "coordinator unhealthy";
/** Reasons of the updates other peers get when a peer is removed. */
export const REASONS = {
  graceful: "graceful disconnect",
  lost: "lost",
  failedUpdate: "failed update",
  coordinatorClose: "coordinator close",
} as const;

/** Options of {@link Coordinator}; every interval has Coder's default and is shortened by tests. */
export interface CoordinatorOptions {
  db: Database;
  /** Default: `db.pubsub`. */
  pubsub?: Pubsub;
  /** This replica's id (its `tailnet_coordinators` row). */
  replicaId: string;
  logger: Logger;
  /** How often this replica writes its heartbeat. Default 2 s. */
  heartbeatIntervalMs?: number;
  /** A replica not heard from for this long is dead and its peers are lost. Default 6 s (3 heartbeats). */
  replicaTimeoutMs?: number;
  /** How often every peer's picture is re-read whatever the notifications said. Default 30 s. */
  fullRefreshIntervalMs?: number;
  /** How often rows older than `retentionMs` are deleted. Default 1 h. */
  cleanupIntervalMs?: number;
  /** Age past which lost and disconnected peers, dead replicas and orphan tunnels go. Default 24 h. */
  retentionMs?: number;
  /** Wait before retrying a failed read or write. Default 500 ms. */
  retryMs?: number;
  /** How long `close` waits for queued writes. Default 5 s. */
  closeTimeoutMs?: number;
}

/** Counters for /metrics. */
export interface CoordinatorCounters {
  /** Coordinate streams on this replica, by kind. */
  peers: { agent: number; client: number };
  /** Tunnels whose source is a peer on this replica. */
  tunnels: number;
  /** NODE updates queued to peers of this replica. */
  nodeUpdatesSent: number;
  /** Peers removed because they did not read their responses. */
  peersDroppedFullQueue: number;
  heartbeatFailures: number;
  /** Replicas alive, this one included. */
  replicasSeen: number;
}

/**
 * The tailnet coordinator of one replica. Each Coordinate stream is a peer; peers that share a
 * tunnel get each other's nodes. All state lives in PostgreSQL (PGlite with one replica), so
 * peers on different replicas coordinate as peers on one do: a replica writes what its peers
 * ask for, every write notifies, and on a notification a replica re-reads the tunnels and rows
 * that concern its peers and tells each peer what changed since it was last told. Reads and
 * writes are batched: however many notifications arrive while a read runs, the next read covers
 * them all in one statement.
 */
export class Coordinator {
  private readonly db: Database;
  private readonly pubsub: Pubsub;
  private readonly logger: Logger;
  private readonly self: string;
  private readonly intervals: Required<Omit<CoordinatorOptions, "db" | "pubsub" | "replicaId" | "logger">>;
  private readonly local = new Map<string, LocalPeer>();
  /** Remote or local peer id → the local peers its changes concern. */
  private readonly interest = new Map<string, Set<LocalPeer>>();
  private readonly writes: CoordinatorWrites;
  private readonly liveness: ReplicaLiveness;
  private readonly heartbeats: HeartbeatLoop;
  private readonly wakeup = new Wakeup();
  private notedPeers = new Set<string>();
  private dirty = new Set<string>();
  private fullRefresh = true;
  /** False until the first heartbeat is written, and while heartbeats fail. */
  private healthy = false;
  private closed = false;
  private loop: Promise<void> | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private unsubscribe: (() => void)[] = [];
  private readonly stats = { nodeUpdatesSent: 0, peersDroppedFullQueue: 0, heartbeatFailures: 0 };

  private constructor(options: CoordinatorOptions) {
    this.db = options.db;
    this.pubsub = options.pubsub ?? options.db.pubsub;
    this.logger = options.logger;
    this.self = options.replicaId;
    this.intervals = {
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? 2_000,
      replicaTimeoutMs: options.replicaTimeoutMs ?? 6_000,
      fullRefreshIntervalMs: options.fullRefreshIntervalMs ?? 30_000,
      cleanupIntervalMs: options.cleanupIntervalMs ?? 3_600_000,
      retentionMs: options.retentionMs ?? 86_400_000,
      retryMs: options.retryMs ?? 500,
      closeTimeoutMs: options.closeTimeoutMs ?? 5_000,
    };
    this.writes = new CoordinatorWrites(this.db, this.self, this.intervals.retryMs, this.logger);
    this.liveness = new ReplicaLiveness(this.self, this.intervals.replicaTimeoutMs);
    this.heartbeats = new HeartbeatLoop({
      db: this.db,
      replicaId: this.self,
      intervalMs: this.intervals.heartbeatIntervalMs,
      logger: this.logger,
      onHealth: (healthy) => this.setHealthy(healthy),
      onFailure: () => this.stats.heartbeatFailures++,
    });
  }

  /**
   * Subscribes, writes the first heartbeat and starts serving. A database that is not migrated
   * yet leaves the coordinator unhealthy (refusing streams) until a heartbeat can be written.
   */
  static async start(options: CoordinatorOptions): Promise<Coordinator> {
    const c = new Coordinator(options);
    try {
      await c.subscribe();
      await c.heartbeats.start();
    } catch (err) {
      for (const u of c.unsubscribe) u();
      throw err;
    }
    const { fullRefreshIntervalMs, replicaTimeoutMs, heartbeatIntervalMs, cleanupIntervalMs } = c.intervals;
    c.timers.push(
      setInterval(() => c.refreshAll(), fullRefreshIntervalMs),
      // Checked each heartbeat period, so a silent replica is declared dead within one period of its timeout.
      setInterval(() => c.expireReplicas(), Math.min(heartbeatIntervalMs, replicaTimeoutMs)),
      setInterval(() => void c.cleanup(), cleanupIntervalMs),
    );
    for (const t of c.timers) t.unref();
    c.loop = c.readLoop();
    return c;
  }

  /**
   * Serves one Coordinate stream for `peer`: its requests in, the updates it must know out. Ends
   * when the peer disconnects (after the DISCONNECTED write is queued), is replaced by a newer
   * stream of the same id, or is removed; when `requests` end or `signal` aborts the peer is
   * lost. A request the peer may not make fails the stream with PermissionDenied, a malformed
   * one (an id that is no UUID, a node over 16 KiB) with InvalidArgument.
   */
  async *coordinate(peer: PeerIdentity, requests: AsyncIterable<CoordinateRequest>, signal: AbortSignal): AsyncGenerator<CoordinateResponse> {
    if (!this.healthy) {
      yield create(CoordinateResponseSchema, { error: UNHEALTHY_ERROR });
      return;
    }
    if (this.closed) return;
    const p = new LocalPeer(peer);
    this.attach(p);
    void this.pump(p, requests, signal);
    try {
      yield* p.responses(signal);
    } finally {
      if (this.local.get(p.id) === p) void this.remove(p, Kind.LOST, REASONS.lost);
    }
  }

  /** The last node of a peer on any replica, lost or not; undefined if it has none or left on purpose. */
  async node(peerId: string): Promise<Node | undefined> {
    const rows = (await listPeerRows(this.db, peerId)).filter((r): r is TailnetPeerRow & { node: Buffer } => r.node !== null && r.status !== "disconnected");
    const newest = rows.sort((a, b) => b.updatedAt.getTime() - a.updatedAt.getTime())[0];
    return newest === undefined ? undefined : fromBinary(NodeSchema, newest.node);
  }

  /** A snapshot of the counters. */
  counters(): CoordinatorCounters {
    const peers = { agent: 0, client: 0 };
    let tunnels = 0;
    for (const p of this.local.values()) {
      peers[p.identity.kind]++;
      tunnels += p.dsts.size;
    }
    return { peers, tunnels, ...this.stats, replicasSeen: this.liveness.count };
  }

  /** True while heartbeats are written; an unhealthy coordinator refuses new streams. */
  get isHealthy(): boolean {
    return this.healthy;
  }

  /**
   * Shuts down: every peer is removed as LOST (tunnel peers here are told so, and the rows say so
   * for other replicas), not DISCONNECTED, so established connections are not disrupted. Rows and
   * tunnels stay for other replicas to answer with. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    for (const u of this.unsubscribe) u();
    const peers = [...this.local.values()];
    const here = new Set(this.local.keys());
    for (const p of peers) {
      p.sendUpdates([...p.told.keys()].filter((id) => here.has(id)).map((id) => update(id, Kind.LOST, REASONS.coordinatorClose)));
      void this.remove(p, Kind.LOST, REASONS.coordinatorClose);
    }
    this.wakeup.notify();
    await this.loop;
    await this.heartbeats.stop();
    await this.writes.close(this.intervals.closeTimeoutMs);
  }

  private async subscribe(): Promise<void> {
    const onLoss = (err: Error) => {
      this.logger.warn({ err }, "tailnet notifications may have been missed; re-reading every peer");
      this.refreshAll();
    };
    const on = async (channel: string, handle: (payload: string) => void) => {
      this.unsubscribe.push(await this.pubsub.subscribe(channel, (payload) => handle(payload.toString("utf8")), onLoss));
    };
    await on(TAILNET_CHANNELS.peerUpdate, (id) => {
      this.notedPeers.add(id);
      this.wakeup.notify();
    });
    await on(TAILNET_CHANNELS.tunnelUpdate, (pair) => {
      for (const id of pair.split(",")) if (this.local.has(id)) this.dirty.add(id);
      this.wakeup.notify();
    });
    await on(TAILNET_CHANNELS.heartbeat, (id) => {
      if (this.liveness.heard(id)) this.refreshAll();
    });
    await on(TAILNET_CHANNELS.readyForHandshake, (pair) => {
      const [to, from] = pair.split(",");
      const p = this.local.get(to ?? "");
      if (p !== undefined && from !== undefined) this.deliver(p, [update(from, Kind.READY_FOR_HANDSHAKE, "")]);
    });
  }

  /** Registers a new stream; one already here with the same id is replaced, its tunnels kept. */
  private attach(p: LocalPeer): void {
    const old = this.local.get(p.id);
    if (old !== undefined) {
      this.logger.info({ peer_id: p.id, peer_name: p.identity.name }, "tailnet peer overwritten by new connection");
      this.forget(old);
      old.finish({ kind: "done" });
    }
    this.local.set(p.id, p);
    this.dirty.add(p.id);
    this.wakeup.notify();
  }

  /** Reads the peer's requests, at most 32 ahead of their writes; their end without disconnect loses the peer. */
  private async pump(p: LocalPeer, requests: AsyncIterable<CoordinateRequest>, signal: AbortSignal): Promise<void> {
    try {
      for await (const req of requests) {
        if (signal.aborted || !(await p.acquireSlot())) break;
        const writes = this.handle(p, req);
        void Promise.all(writes).then(() => p.releaseSlot());
        if (p.end !== undefined) break;
      }
    } catch (err) {
      if (!signal.aborted) this.logger.debug({ err, peer_id: p.id }, "tailnet peer request stream failed");
    }
    if (this.local.get(p.id) === p) void this.remove(p, Kind.LOST, REASONS.lost);
  }

  /** Acts on one request; returns the writes it queued. A refused request ends the peer as lost. */
  private handle(p: LocalPeer, req: CoordinateRequest): Promise<void>[] {
    const writes: Promise<void>[] = [];
    const write = (w: CoordinatorWrite) => writes.push(this.writes.enqueue(w));
    try {
      p.identity.auth(req);
      const node = req.updateSelf?.node;
      if (node !== undefined) {
        const bytes = Buffer.from(toBinary(NodeSchema, node));
        if (bytes.length > MAX_NODE_BYTES) throw new Error(`node of ${bytes.length} bytes exceeds ${MAX_NODE_BYTES}`);
        write({ kind: "node", id: p.id, node: bytes });
      }
      if (req.addTunnel !== undefined) write({ kind: "addTunnel", src: p.id, dst: uuidFromBytes(req.addTunnel.id, "add tunnel") });
      if (req.removeTunnel !== undefined) write({ kind: "removeTunnel", src: p.id, dst: uuidFromBytes(req.removeTunnel.id, "remove tunnel") });
      for (const rfh of req.readyForHandshake) {
        const to = uuidFromBytes(rfh.id, "ready for handshake");
        // Racy by nature (the source may just have left), so it is answered, not fatal.
        if (p.tunnelPeers.has(to)) write({ kind: "readyForHandshake", to, from: p.id });
        else this.deliver(p, create(CoordinateResponseSchema, { error: `you do not share a tunnel with "${to}"` }));
      }
      if (req.disconnect !== undefined) writes.push(this.remove(p, Kind.DISCONNECTED, REASONS.graceful));
    } catch (err) {
      const message = err instanceof ConnectError ? err.rawMessage : (err as Error).message;
      this.logger.info({ peer_id: p.id, peer_name: p.identity.name, err: message }, "tailnet request refused; peer lost");
      const code = err instanceof CoordinateAuthError ? Code.PermissionDenied : Code.InvalidArgument;
      writes.push(this.remove(p, Kind.LOST, REASONS.lost, { error: new ConnectError(message, code) }));
    }
    return writes;
  }

  /**
   * Removes a peer from this replica: LOST keeps its row (as lost) and tunnels; DISCONNECTED marks
   * the row with the reason and withdraws its tunnels. Its tunnel peers learn it from the rows.
   */
  private remove(p: LocalPeer, kind: Kind.LOST | Kind.DISCONNECTED, reason: string, end: { error?: Error; final?: CoordinateResponse } = {}): Promise<void> {
    if (this.local.get(p.id) !== p) return Promise.resolve();
    this.local.delete(p.id);
    this.forget(p);
    const how = end.error !== undefined ? { kind: "failed" as const, error: end.error } : { kind: "done" as const };
    p.finish(how, { final: end.final, discard: reason === REASONS.failedUpdate });
    return this.writes.enqueue(kind === Kind.LOST ? { kind: "lost", id: p.id } : { kind: "disconnect", id: p.id, reason });
  }

  /** Queues a response or updates; a peer whose queue is full is dropped, and nobody waits for it. */
  private deliver(p: LocalPeer, what: CoordinateResponse | ReturnType<typeof update>[]): void {
    const ok = Array.isArray(what) ? p.sendUpdates(what) : p.send(what);
    if (ok) return;
    this.stats.peersDroppedFullQueue++;
    this.logger.warn({ peer_id: p.id, peer_name: p.identity.name }, "tailnet peer not reading its updates; dropped");
    void this.remove(p, Kind.DISCONNECTED, REASONS.failedUpdate);
  }

  private forget(p: LocalPeer): void {
    this.setInterest(p, new Set());
  }

  private refreshAll(): void {
    this.fullRefresh = true;
    this.wakeup.notify();
  }

  private expireReplicas(): void {
    const dead = this.liveness.expire();
    if (dead.length === 0) return;
    this.logger.warn({ replicas: dead }, "tailnet replicas stopped heartbeating; their peers are lost");
    this.refreshAll();
  }

  private setHealthy(healthy: boolean): void {
    this.healthy = healthy;
    if (healthy) return;
    this.logger.error("tailnet heartbeats failing; closing every peer of this replica");
    for (const p of [...this.local.values()]) {
      void this.remove(p, Kind.LOST, REASONS.lost, { final: create(CoordinateResponseSchema, { error: UNHEALTHY_ERROR }) });
    }
  }

  private async cleanup(): Promise<void> {
    try {
      const removed = await cleanupTailnet(this.db, this.intervals.retentionMs);
      this.logger.debug(removed, "tailnet cleanup");
    } catch (err) {
      this.logger.warn({ err }, "tailnet cleanup failed");
    }
  }

  /**
   * The one reader: waits for notifications, works out which local peers they concern, reads
   * their tunnels and their tunnel peers' rows in one statement, and sends each peer what
   * changed. Notifications that arrive during a read are resolved after it, against the
   * interests it found.
   */
  private async readLoop(): Promise<void> {
    while (!this.closed) {
      await this.wakeup.wait();
      if (this.closed) break;
      // Nothing to tell anyone; the first peer to attach brings the full refresh on.
      if (this.local.size === 0) {
        this.notedPeers.clear();
        this.dirty.clear();
        continue;
      }
      try {
        if (this.fullRefresh) {
          this.fullRefresh = false;
          for (const id of this.local.keys()) this.dirty.add(id);
          if (this.liveness.seed(await listLiveCoordinators(this.db, this.intervals.replicaTimeoutMs))) {
            for (const id of this.local.keys()) this.dirty.add(id);
          }
        }
        for (const id of this.notedPeers) for (const p of this.interest.get(id) ?? []) this.dirty.add(p.id);
        this.notedPeers = new Set();
        if (this.dirty.size === 0) continue;
        const ids = [...this.dirty].filter((id) => this.local.has(id));
        this.dirty = new Set();
        await this.refresh(ids);
      } catch (err) {
        this.logger.warn({ err }, "tailnet read failed; retrying");
        this.refreshAll();
        await new Promise((r) => setTimeout(r, this.intervals.retryMs));
      }
    }
  }

  private async refresh(ids: string[]): Promise<void> {
    const extra = new Set<string>();
    for (const id of ids) for (const told of this.local.get(id)?.told.keys() ?? []) extra.add(told);
    const bindings = await readBindings(this.db, ids, [...extra]);
    const rowsById = new Map<string, TailnetPeerRow[]>();
    for (const r of bindings.rows) {
      const list = rowsById.get(r.id);
      if (list === undefined) rowsById.set(r.id, [r]);
      else list.push(r);
    }
    const alive = (coordinatorId: string) => this.liveness.alive(coordinatorId);
    const states = new Map<string, ReturnType<typeof bestPeerState>>();
    const stateOf = (id: string) => {
      if (!states.has(id)) states.set(id, bestPeerState(rowsById.get(id) ?? [], alive));
      return states.get(id);
    };
    const tunnelPeers = tunnelPeersByPeer(bindings.tunnels);
    for (const id of ids) {
      const p = this.local.get(id);
      if (p === undefined) continue;
      const { peers, dsts } = tunnelPeers.get(id) ?? { peers: new Set<string>(), dsts: new Set<string>() };
      p.tunnelPeers = peers;
      p.dsts = dsts;
      const updates = peerUpdates(peers, p.told, stateOf);
      this.stats.nodeUpdatesSent += updates.filter((u) => u.kind === Kind.NODE).length;
      if (updates.length > 0) this.deliver(p, updates);
      if (this.local.get(id) === p) this.setInterest(p, new Set([...peers, ...p.told.keys()]));
    }
  }

  private setInterest(p: LocalPeer, ids: Set<string>): void {
    for (const id of p.interest) {
      if (ids.has(id)) continue;
      const set = this.interest.get(id);
      set?.delete(p);
      if (set?.size === 0) this.interest.delete(id);
    }
    for (const id of ids) {
      let set = this.interest.get(id);
      if (set === undefined) this.interest.set(id, (set = new Set()));
      set.add(p);
    }
    p.interest = ids;
  }
}
