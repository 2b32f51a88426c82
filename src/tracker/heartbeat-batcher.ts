import type { Logger } from "../log.js";

import type { RecordedConnection } from "./connection-tracker.js";

/** One agent's pending refresh: the connection that is alive and when it was last seen. */
export interface Heartbeat {
  agentId: string;
  connection: RecordedConnection;
  at: Date;
}

export interface HeartbeatBatcherOptions {
  /** Writes many agents' refreshes in one statement. */
  write: (beats: Heartbeat[]) => Promise<void>;
  /** How often pending refreshes are written (C9: at most 1 s). */
  intervalMs: number;
  logger: Logger;
}

/**
 * Collects connection-time refreshes from every tracker and writes them together, one
 * statement per flush, so database load grows with time, not with the number of agents.
 * Pending refreshes are keyed by agent: the newest wins, so the queue is bounded by the
 * number of connected agents.
 */
export class HeartbeatBatcher {
  readonly name = "heartbeats";
  private pending = new Map<string, Heartbeat>();
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();
  flushErrors = 0;
  readonly dropped = 0;

  constructor(private readonly options: HeartbeatBatcherOptions) {
    this.timer = setInterval(() => void this.flush(), options.intervalMs);
    this.timer.unref();
  }

  get queued(): number {
    return this.pending.size;
  }

  add(beat: Heartbeat): void {
    this.pending.set(beat.agentId, beat);
  }

  /** Drops a pending refresh, so a disconnect written now is not followed by a stale "connected". */
  forget(agentId: string, connection: RecordedConnection): void {
    if (this.pending.get(agentId)?.connection === connection) this.pending.delete(agentId);
  }

  /** Writes what is pending; errors are logged and counted, never thrown. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (this.pending.size === 0) return;
      const beats = [...this.pending.values()];
      this.pending = new Map();
      try {
        await this.options.write(beats);
      } catch (err) {
        this.flushErrors++;
        this.options.logger.error({ err, agents: beats.length }, "writing agent heartbeats failed");
      }
    });
    return this.flushing;
  }

  /** Stops the timer and writes what is pending. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
