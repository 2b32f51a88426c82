import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";

/** A forked bench script of this folder (run under tsx) answering one request at a time over IPC. */
export function child(script: string, env: Record<string, string>): { proc: ChildProcess; ask<T>(msg: unknown): Promise<T> } {
  const proc = fork(new URL(script, import.meta.url).pathname, [], { execArgv: ["--import", "tsx"], env: { ...process.env, ...env } });
  return {
    proc,
    async ask<T>(msg: unknown): Promise<T> {
      proc.send(msg as string);
      return ((await once(proc, "message")) as [T])[0];
    },
  };
}
