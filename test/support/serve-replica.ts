/**
 * `agentgate serve` as a child process on a shared PostgreSQL database: one replica of several.
 * Started through the real CLI, so what a test sees is what an operator running two servers gets.
 */
import { spawnCli, type CliProcess } from "./cli.js";

export interface ServeReplica {
  process: CliProcess;
  url: string;
  replicaId: string;
  /** SIGKILL: no shutdown, no last writes, as a crashed host. Resolves when the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<void>;
}

/** Starts `serve` on 127.0.0.1 and a free port with `args` (the database, the admin token) and waits until it listens. */
export async function startServeReplica(args: string[]): Promise<ServeReplica> {
  const proc = spawnCli(["serve", "--listen", "127.0.0.1:0", "--log-level", "info", ...args]);
  try {
    const line = (await proc.waitForLine((l) => l.msg === "agentgate listening", 120_000)) as { url: string; replica_id: string };
    const end = async (signal: NodeJS.Signals) => {
      if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill(signal);
      await proc.exited;
    };
    return { process: proc, url: line.url, replicaId: line.replica_id, kill: () => end("SIGKILL"), stop: () => end("SIGTERM") };
  } catch (err) {
    proc.child.kill("SIGKILL");
    throw err;
  }
}
