import { randomBytes } from "node:crypto";
import type { ConnectionGuard } from "../db/queries/agent-connections.js";
import type { Logger } from "../log.js";

/** Why the tracker ends a connection: a fixed set, for metrics labels and log fields. */
export type EvictionReason =
  /** No pong within the inactive timeout. */
  | "ping_timeout"
  /** The workspace has a newer build than the agent's. */
  | "build_outdated"
  /** Recording the connection failed (the database is down, or the agent was deleted meanwhile). */
  | "connection_write_failed";

/** The database side of connection tracking, handed in so the tracker stays testable alone. */
export interface ConnectionStore {
  /** Marks the agent connected now (first/last connected, this replica) as a new connection generation. */
  connect(agentId: string, at: Date): Promise<ConnectionGuard>;
  /**
   * Queues a refresh of last_connected_at (and disconnected_at = null) for a later batched write;
   * never throws. `onSuperseded` runs if the write finds the row recording another connection of
   * the agent that has ended.
   */
  refresh(agentId: string, connection: ConnectionGuard, at: Date, onSuperseded: () => void): void;
  /** Sets disconnected_at, unless a newer connection of the agent has been recorded since (then false). */
  disconnect(agentId: string, connection: ConnectionGuard, at: Date): Promise<boolean>;
}

/** The part of a WebSocket the tracker drives: pings out with a payload, pongs in with theirs. */
export interface PingableSocket {
  ping(data: Buffer): void;
  on(event: "pong", listener: (data: Buffer) => void): unknown;
  off(event: "pong", listener: (data: Buffer) => void): unknown;
}

/** Random bytes in each ping: a pong must echo them to count, so it can't be sent unasked. */
const PING_PAYLOAD_BYTES = 8;
/** Pings whose pong still counts: a slow link may answer one after the next went out. */
const PINGS_REMEMBERED = 4;
/**
 * A tunnel the agent sent bytes on since the last tick needs no ping to show it lives, but every
 * this many ticks it gets one anyway: only an echo proves the agent still reads what we send.
 */
const READ_PROOF_TICKS = 4;

export interface ConnectionTrackerOptions {
  agentId: string;
  socket: PingableSocket;
  store: ConnectionStore;
  /** Publishes `agt_connection_update` for this agent; must not throw. */
  publishConnectionUpdate: () => void;
  /**
   * Ends the tunnel: called once, with why and the text for the WebSocket close frame (coderd's:
   * "ping timeout", or the failed write's error).
   */
  evict: (reason: EvictionReason, closeReason: string) => void;
  /** Ping period (`--agent-update-interval`). */
  updateIntervalMs: number;
  /** No pong for this long ends the connection (`--agent-inactive-timeout`). */
  inactiveTimeoutMs: number;
  /** Bound on the final disconnect write; defaults to the inactive timeout, as coderd bounds it. */
  disconnectWriteTimeoutMs?: number;
  /**
   * Bytes the agent has sent on the tunnel so far. With it, a tick after which the agent sent
   * something counts as hearing from it, and pings go out only to quiet tunnels (and every
   * READ_PROOF_TICKS ticks); without it, every tick pings.
   */
  bytesReceived?: () => number;
  logger: Logger;
  onPing?: () => void;
}

/**
 * Watches one agent connection as coderd does: records it as connected, queues a refresh of its
 * connection time every interval, and evicts it on a ping timeout or a failed first write.
 * Liveness: an agent is heard from when a pong echoes one of our pings, or when it sent bytes
 * since the last tick; one not heard from for the inactive timeout is evicted, and so is one
 * that leaves a ping unanswered that long. A quiet tunnel is pinged (WebSocket ping frames) every
 * tick, as coderd pings every agent; a busy one only every READ_PROOF_TICKS ticks, since each
 * ping is a write and a read per agent, a large share of a busy server's work. Nothing in a tick
 * reads the database, so a database outage never evicts. Whether its identity (build, agent,
 * workspace) is still current is the identity watch's to say. `stop()` writes the disconnect
 * when the tunnel ends, whatever ended it.
 */
export class ConnectionTracker {
  /** When the agent was last heard from, at the earliest: a pong echoing our ping, or bytes it sent. */
  private lastHeard = Date.now();
  /** When the oldest ping still unanswered went out. */
  private unansweredSince: number | undefined;
  private lastTickAt = Date.now();
  private receivedAtLastTick = 0;
  private ticksSincePing = 0;
  private connection: ConnectionGuard | undefined;
  private connecting: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private evicted = false;
  private rerecording = false;
  /** Payloads of the last pings sent, newest last. */
  private readonly pingsOut: Buffer[] = [];
  /**
   * Only a pong echoing one of our pings proves the agent reads its socket: an agent that never
   * reads but sends pongs of its own would otherwise stay connected forever, its unread data
   * piling up here.
   */
  private readonly onPong = (data: Buffer) => {
    if (!this.pingsOut.some((p) => p.equals(data))) return;
    this.lastHeard = Date.now();
    this.unansweredSince = undefined;
  };

  constructor(private readonly options: ConnectionTrackerOptions) {}

  /** Records the connection and starts the ping loop. Rejects (and evicts) if the first write fails. */
  async start(): Promise<void> {
    const { socket, store, agentId } = this.options;
    socket.on("pong", this.onPong);
    try {
      const connecting = store.connect(agentId, new Date());
      this.connecting = connecting.catch(() => undefined);
      this.connection = await connecting;
    } catch (err) {
      this.evictOnce("connection_write_failed", errorText(err));
      throw err;
    }
    this.options.publishConnectionUpdate();
    if (this.stopped) return;
    // The first tick at a random phase: agents that connected together (a server restart) must
    // not all ping and queue refreshes in the same instant for the rest of their lives.
    const interval = this.options.updateIntervalMs;
    this.timer = setTimeout(() => {
      if (this.stopped) return;
      this.tick();
      this.timer = setInterval(() => this.tick(), interval);
    }, Math.floor(Math.random() * interval));
  }

  private tick(): void {
    if (this.stopped || this.connection === undefined) return;
    const { options } = this;
    const now = Date.now();
    const received = options.bytesReceived?.();
    const sentSomething = received !== undefined && received !== this.receivedAtLastTick;
    if (received !== undefined) this.receivedAtLastTick = received;
    // The bytes came after the last tick: count the agent heard from then, the earliest they
    // may have come, so a tunnel gone silent is never kept past the timeout.
    if (sentSomething) this.lastHeard = Math.max(this.lastHeard, this.lastTickAt);
    this.lastTickAt = now;
    const unanswered = this.unansweredSince !== undefined && now - this.unansweredSince > options.inactiveTimeoutMs;
    if (unanswered || now - this.lastHeard > options.inactiveTimeoutMs) {
      this.evictOnce("ping_timeout", "ping timeout");
      return;
    }
    if (!sentSomething || ++this.ticksSincePing >= READ_PROOF_TICKS) this.ping(now);
    options.store.refresh(options.agentId, this.connection, new Date(now), this.onSuperseded);
  }

  private ping(now: number): void {
    const payload = randomBytes(PING_PAYLOAD_BYTES);
    this.pingsOut.push(payload);
    if (this.pingsOut.length > PINGS_REMEMBERED) this.pingsOut.shift();
    this.unansweredSince ??= now;
    this.ticksSincePing = 0;
    this.options.socket.ping(payload);
    this.options.onPing?.();
  }

  /**
   * The row records another connection of this agent, ended since, so it says "disconnected"
   * while this one lives (and refuses this one's refreshes): record this connection again, as a
   * new generation. `stop()` waits for that write, so the disconnect goes out with the new guard.
   */
  private readonly onSuperseded = () => {
    if (this.stopped || this.rerecording) return;
    this.rerecording = true;
    const { store, agentId, logger } = this.options;
    logger.info("agent connection recorded again: the database held an ended connection of the agent");
    this.connecting = store
      .connect(agentId, new Date())
      .then(
        (connection) => {
          this.connection = connection;
          this.options.publishConnectionUpdate();
        },
        (err: unknown) => logger.warn({ err }, "recording the agent connection again failed"),
      )
      .finally(() => (this.rerecording = false));
  };

  private evictOnce(reason: EvictionReason, closeReason: string): void {
    if (this.evicted || this.stopped) return;
    this.evicted = true;
    this.options.evict(reason, closeReason);
  }

  /**
   * Stops the loop and records the disconnect, bounded by its own timeout so a slow database
   * cannot hold shutdown. Safe to call more than once; later calls resolve at once.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    // Either the first tick's timeout or the interval: Node clears both with either call.
    clearInterval(this.timer);
    const { options } = this;
    options.socket.off("pong", this.onPong);
    // A connect write still in flight would land after the disconnect: let it finish first.
    await this.connecting;
    const { connection } = this;
    // Never recorded as connected: there is nothing to undo.
    if (connection === undefined) return;
    const timeoutMs = options.disconnectWriteTimeoutMs ?? options.inactiveTimeoutMs;
    let timeout: NodeJS.Timeout | undefined;
    try {
      const wrote = await Promise.race([
        options.store.disconnect(options.agentId, connection, new Date()),
        new Promise<never>((_, reject) => {
          timeout = setTimeout(() => reject(new Error(`disconnect write timed out after ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      if (wrote) options.publishConnectionUpdate();
    } catch (err) {
      options.logger.error({ err }, "recording agent disconnect failed");
    } finally {
      clearTimeout(timeout);
    }
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
