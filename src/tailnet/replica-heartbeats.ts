import { performance } from "node:perf_hooks";
import type { Queryable } from "../db/database.js";
import { heartbeatCoordinator } from "../db/queries/tailnet.js";
import type { Logger } from "../log.js";

/** Failed heartbeat writes in a row after which a replica stops serving peers (as Coder's coordinator). */
export const FAILED_HEARTBEATS_UNHEALTHY = 3;

/**
 * @internal Which other replicas are alive: each one heard from (a heartbeat notification, or a
 * recent heartbeat row) within `timeoutMs`. Changes only through {@link heard}, {@link seed} and
 * {@link expire}, so the coordinator re-reads exactly when the answer changes.
 */
export class ReplicaLiveness {
  private readonly lastHeard = new Map<string, number>();

  constructor(
    private readonly self: string,
    private readonly timeoutMs: number,
  ) {}

  alive(id: string): boolean {
    return id === this.self || this.lastHeard.has(id);
  }

  /** Records a heartbeat of `id`; true when it was not alive before. */
  heard(id: string): boolean {
    if (id === this.self) return false;
    const isNew = !this.lastHeard.has(id);
    this.lastHeard.set(id, performance.now());
    return isNew;
  }

  /** Takes heartbeat ages the database reports; true when a replica became alive. */
  seed(replicas: { id: string; ageMs: number }[]): boolean {
    let changed = false;
    for (const r of replicas) {
      if (r.id === this.self) continue;
      const at = performance.now() - r.ageMs;
      changed ||= !this.lastHeard.has(r.id);
      if ((this.lastHeard.get(r.id) ?? -Infinity) < at) this.lastHeard.set(r.id, at);
    }
    return changed;
  }

  /** Forgets replicas silent for `timeoutMs`; returns them. */
  expire(): string[] {
    const cutoff = performance.now() - this.timeoutMs;
    const dead = [...this.lastHeard].filter(([, at]) => at < cutoff).map(([id]) => id);
    for (const id of dead) this.lastHeard.delete(id);
    return dead;
  }

  /** Replicas alive, this one included. */
  get count(): number {
    return this.lastHeard.size + 1;
  }
}

/** @internal Options of {@link HeartbeatLoop}. */
export interface HeartbeatLoopOptions {
  db: Queryable;
  replicaId: string;
  intervalMs: number;
  logger: Logger;
  /** Health changed: true at the first success and the first after failures, false after {@link FAILED_HEARTBEATS_UNHEALTHY} failures in a row. */
  onHealth: (healthy: boolean) => void;
  onFailure: () => void;
}

/**
 * @internal Writes this replica's heartbeat every `intervalMs`, counted from the end of the
 * previous write, so heartbeats never bunch up after a slow one. A write that takes longer than
 * the interval counts as failed. Unhealthy until the first write succeeds (peers' rows need the
 * replica's row), then after {@link FAILED_HEARTBEATS_UNHEALTHY} failures in a row.
 */
export class HeartbeatLoop {
  private failures = 0;
  private healthy = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private current: Promise<void> | undefined;

  constructor(private readonly options: HeartbeatLoopOptions) {}

  /** Writes the first heartbeat (whether it succeeds shows through `onHealth`), then keeps writing. */
  async start(): Promise<void> {
    await this.beat();
    this.schedule();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.current;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.current = this.beat().finally(() => {
        this.current = undefined;
        this.schedule();
      });
    }, this.options.intervalMs);
  }

  private async beat(): Promise<void> {
    const { options } = this;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        heartbeatCoordinator(options.db, options.replicaId),
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error("heartbeat write timed out")), options.intervalMs))),
      ]);
      this.failures = 0;
      if (!this.healthy) {
        this.healthy = true;
        options.logger.info("tailnet heartbeat written; coordinator healthy");
        options.onHealth(true);
      }
    } catch (err) {
      this.failures++;
      options.onFailure();
      options.logger.warn({ err, failures: this.failures }, "tailnet heartbeat failed");
      if (this.failures >= FAILED_HEARTBEATS_UNHEALTHY && this.healthy && !this.stopped) {
        this.healthy = false;
        options.onHealth(false);
      }
    } finally {
      clearTimeout(timer);
    }
  }
}
