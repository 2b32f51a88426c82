import { setTimeout as sleep } from "node:timers/promises";
import type { Queryable } from "../db/database.js";
import {
  addTunnels,
  disconnectPeers,
  markPeersLost,
  publishReadyForHandshake,
  removeTunnels,
  upsertPeerNodes,
} from "../db/queries/tailnet.js";
import type { Logger } from "../log.js";

/** One write the coordinator makes for its peers. */
export type CoordinatorWrite =
  | { kind: "node"; id: string; node: Buffer }
  | { kind: "lost"; id: string }
  | { kind: "disconnect"; id: string; reason: string }
  | { kind: "addTunnel"; src: string; dst: string }
  | { kind: "removeTunnel"; src: string; dst: string }
  | { kind: "readyForHandshake"; to: string; from: string };

interface Pending {
  write: CoordinatorWrite;
  done: () => void;
}

/**
 * @internal The coordinator's writes, in the order its peers asked for them, batched: whatever
 * queued while the previous statement ran goes out together, one statement per run of writes of
 * one kind (so 5,000 node updates are one INSERT, not 5,000). A failed statement is retried after
 * `retryMs` until it succeeds or the queue is closed; writes behind it wait, so order holds.
 */
export class CoordinatorWrites {
  private queue: Pending[] = [];
  private running: Promise<void> | undefined;
  private closed = false;
  private idle: (() => void)[] = [];

  constructor(
    private readonly db: Queryable,
    private readonly coordinatorId: string,
    private readonly retryMs: number,
    private readonly logger: Logger,
  ) {}

  /** Queues a write; resolves once it is in the database (never if the queue is closed first). */
  enqueue(write: CoordinatorWrite): Promise<void> {
    return new Promise((done) => {
      this.queue.push({ write, done });
      this.running ??= this.run();
    });
  }

  /** Resolves when every queued write is done, or after `timeoutMs`; then drops what is left. */
  async close(timeoutMs: number): Promise<void> {
    if (this.running !== undefined) {
      const drained = new Promise<void>((resolve) => this.idle.push(resolve));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([drained, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
      clearTimeout(timer);
    }
    this.closed = true;
    if (this.queue.length > 0) this.logger.warn({ dropped: this.queue.length }, "tailnet writes dropped at close");
    this.queue = [];
  }

  private async run(): Promise<void> {
    while (this.queue.length > 0 && !this.closed) {
      const batch = this.queue;
      this.queue = [];
      for (const run of runsOf(batch)) {
        while (!(await this.tryWrite(run.map((p) => p.write)))) {
          if (this.closed) return;
          await sleep(this.retryMs);
          if (this.closed) return;
        }
        for (const p of run) p.done();
      }
    }
    this.running = undefined;
    for (const w of this.idle.splice(0)) w();
  }

  private async tryWrite(writes: CoordinatorWrite[]): Promise<boolean> {
    try {
      await this.write(writes);
      return true;
    } catch (err) {
      this.logger.warn({ err, kind: writes[0]!.kind, count: writes.length }, "tailnet write failed; retrying");
      return false;
    }
  }

  /** One statement for a run of writes of one kind; a later write of the same peer or pair wins. */
  private async write(writes: CoordinatorWrite[]): Promise<void> {
    const { db, coordinatorId: self } = this;
    const kind = writes[0]!.kind;
    const of = <K extends CoordinatorWrite["kind"]>(k: K) => writes as Extract<CoordinatorWrite, { kind: K }>[];
    switch (kind) {
      case "node":
        return upsertPeerNodes(db, self, lastBy(of(kind), (w) => w.id));
      case "lost":
        return markPeersLost(db, self, lastBy(of(kind), (w) => w.id).map((w) => w.id));
      case "disconnect":
        return disconnectPeers(db, self, lastBy(of(kind), (w) => w.id));
      case "addTunnel":
        return addTunnels(db, self, lastBy(of(kind), pairKey));
      case "removeTunnel":
        return removeTunnels(db, lastBy(of(kind), pairKey));
      case "readyForHandshake":
        return publishReadyForHandshake(db, of(kind));
    }
  }
}

/** The last item per key: statements that upsert may not touch one row twice. */
function lastBy<T>(items: T[], key: (item: T) => string): T[] {
  return [...new Map(items.map((item) => [key(item), item])).values()];
}

function pairKey(t: { src: string; dst: string }): string {
  return `${t.src},${t.dst}`;
}

/** Splits a batch into runs of consecutive writes of one kind, keeping their order. */
function runsOf(batch: Pending[]): Pending[][] {
  const runs: Pending[][] = [];
  for (const p of batch) {
    const run = runs[runs.length - 1];
    if (run !== undefined && run[0]!.write.kind === p.write.kind) run.push(p);
    else runs.push([p]);
  }
  return runs;
}
