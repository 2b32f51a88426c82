import cluster, { type Worker } from "node:cluster";
import { backoffDelay, type BackoffOptions } from "../backoff.js";
import type { Logger } from "../log.js";

/** What a worker tells the primary once it serves. */
export interface WorkerListening {
  type: "listening";
  replicaId: string;
  address: string;
  port: number;
}

/** What the primary tells a worker: drain and exit. */
export interface WorkerShutdown {
  type: "shutdown";
}

/** Restarts of a worker that keeps crashing back off from 0.5 s to 30 s, jittered. */
const RESTART_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000 };
/** A worker that served this long before it died starts its slot's backoff afresh. */
const HEALTHY_UPTIME_MS = 30_000;
/** How long a worker may take from fork to listening before the start is given up. */
const START_TIMEOUT_MS = 120_000;
/**
 * V8's semi-space for workers, in MiB (Node's default is 16). Two workers holding ten thousand
 * agents each under the steady fleet workload scavenged every ~200 ms; with 32 MiB, garbage
 * collection took 7–8 % of a core between them instead of 11–15 %.
 */
export const WORKER_SEMI_SPACE_MIB = 32;

/**
 * How far a worker's old generation may grow past what the last full collection kept before the
 * next one, in percent (V8 picks up to 300 % on a machine with memory to spare). A fleet's
 * garbage is mostly calls' short-lived objects that outlived two scavenges; at 50 % two workers
 * holding 10,000 agents peaked at 723 MiB instead of 817 MiB (45 KB per agent instead of 55), with
 * no more CPU: marking a 100 MB live heap every 20–40 s costs well under 1 % of a core.
 */
export const WORKER_HEAP_GROWING_PERCENT = 50;

/** V8 flags workers get unless the operator set them (in the flags or NODE_OPTIONS): name, value. */
const WORKER_V8_DEFAULTS: ReadonlyArray<readonly [string, number]> = [
  ["max-semi-space-size", WORKER_SEMI_SPACE_MIB],
  ["heap-growing-percent", WORKER_HEAP_GROWING_PERCENT],
];

/**
 * The Node flags workers run with: the primary's own, plus each of {@link WORKER_V8_DEFAULTS} the
 * operator did not set already (V8 takes `-` and `_` alike in flag names).
 */
export function workerExecArgv(execArgv: readonly string[], nodeOptions = process.env.NODE_OPTIONS ?? ""): string[] {
  const given = [...execArgv, ...nodeOptions.split(/\s+/)].map((a) => a.replaceAll("_", "-"));
  const added = WORKER_V8_DEFAULTS.filter(([name]) => !given.some((a) => a === `--${name}` || a.startsWith(`--${name}=`))).map(([name, value]) => `--${name}=${value}`);
  return [...execArgv, ...added];
}

export interface WorkerPool {
  /** The first worker's address: all of them share it. */
  readonly address: { address: string; port: number };
  /** The replica ids of the workers serving now. */
  replicaIds(): string[];
  /** Asks every worker to drain and waits for all to exit; true when all exited with 0. */
  shutdown(): Promise<boolean>;
  /** SIGKILLs every worker: the second signal's answer. */
  kill(): void;
}

/**
 * Forks `count` workers of this same command and keeps them running: a worker that exits
 * while the pool is up is forked again after a jittered backoff that grows while it keeps dying.
 * Resolves once every worker listens; rejects if one exits or times out before that.
 */
export async function startWorkerPool(count: number, env: NodeJS.ProcessEnv, logger: Logger): Promise<WorkerPool> {
  interface Slot {
    index: number;
    worker: Worker;
    replicaId?: string;
    startedAt: number;
    crashes: number;
  }
  const slots: Slot[] = [];
  let stopping = false;
  let started = false;
  let first: WorkerListening | undefined;
  const exits = new Set<Promise<void>>();
  let cleanExits = true;

  return new Promise<WorkerPool>((resolveStart, rejectStart) => {
    const startTimer = setTimeout(() => failStart(new Error(`workers did not all listen within ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
    const failStart = (err: Error) => {
      clearTimeout(startTimer);
      stopping = true;
      for (const s of slots) s.worker.process.kill("SIGKILL");
      rejectStart(err);
    };
    const maybeStarted = () => {
      if (started || slots.length < count || slots.some((s) => s.replicaId === undefined)) return;
      started = true;
      clearTimeout(startTimer);
      resolveStart(pool);
    };

    const fork = (index: number, crashes: number) => {
      const worker = cluster.fork({ ...env, AGENTGATE_WORKER_INDEX: String(index) });
      const slot: Slot = { index, worker, startedAt: Date.now(), crashes };
      slots[index] = slot;
      let exited!: () => void;
      exits.add(new Promise<void>((resolve) => (exited = resolve)));
      worker.on("message", (message: WorkerListening) => {
        if (message?.type !== "listening") return;
        slot.replicaId = message.replicaId;
        first ??= message;
        logger.info({ worker: index, worker_pid: worker.process.pid, replica_id: message.replicaId }, "worker listening");
        maybeStarted();
      });
      worker.once("exit", (code, signal) => {
        exited();
        if (stopping) {
          if (code !== 0) cleanExits = false;
          return;
        }
        logger.error({ worker: index, worker_pid: worker.process.pid, code, signal }, "worker exited");
        if (!started) return failStart(new Error(`worker ${index} exited before it listened (${signal ?? `code ${code}`})`));
        const next = Date.now() - slot.startedAt >= HEALTHY_UPTIME_MS ? 0 : slot.crashes + 1;
        const delayMs = backoffDelay(next, RESTART_BACKOFF);
        logger.info({ worker: index, restart_in_ms: delayMs }, "restarting worker");
        setTimeout(() => {
          if (!stopping) fork(index, next);
        }, delayMs).unref();
      });
    };

    const pool: WorkerPool = {
      get address() {
        return { address: first!.address, port: first!.port };
      },
      replicaIds: () => slots.filter((s) => s.replicaId !== undefined && s.worker.isConnected()).map((s) => s.replicaId!),
      async shutdown() {
        stopping = true;
        for (const s of slots) {
          if (s.worker.isConnected()) s.worker.send({ type: "shutdown" } satisfies WorkerShutdown);
        }
        await Promise.all(exits);
        return cleanExits;
      },
      kill() {
        stopping = true;
        for (const s of slots) s.worker.process.kill("SIGKILL");
      },
    };

    // Each worker accepts from the shared listening socket itself (SCHED_NONE), so the kernel's
    // listen backlog bounds what waits. With node:cluster's round-robin the primary accepts every
    // connection into an unbounded queue and hands them out one IPC round trip at a time: after a
    // restart under a full fleet, the agents' redials piled up there faster than busy workers took
    // them and reached the workers after their clients had given up: 2,000 agents dialing faster
    // than two workers could admit them stuck at 327 connected, where accepting in the workers
    // kept admitting. The kernel's split is uneven; --max-connections bounds one worker's share.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ execArgv: workerExecArgv(process.execArgv) });
    for (let i = 0; i < count; i++) fork(i, 0);
  });
}

/**
 * In a worker: resolves when the primary asks for a drain, the primary goes away, or someone
 * sends this worker SIGTERM. SIGINT is left to the primary, which forwards it (a terminal's
 * Ctrl-C reaches the whole process group, and a second signal would mean "exit now").
 */
export function waitForPrimary(logger: Logger): Promise<void> {
  process.on("SIGINT", () => undefined);
  return new Promise((resolve) => {
    let draining = false;
    const done = (why: string) => {
      if (draining) return;
      draining = true;
      logger.info({ why }, "worker draining");
      resolve();
    };
    process.on("message", (message: WorkerShutdown) => {
      if (message?.type === "shutdown") done("primary shutdown");
    });
    process.once("disconnect", () => done("primary gone"));
    process.once("SIGTERM", () => done("SIGTERM"));
  });
}

/** Tells the primary this worker serves. */
export function reportListening(message: Omit<WorkerListening, "type">): void {
  process.send?.({ type: "listening", ...message } satisfies WorkerListening);
}
