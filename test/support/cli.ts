/** Runs the real `agentgate` command (src/cli/main.ts under tsx) as a child process. */
import { execFile } from "node:child_process";

const MAIN = new URL("../../src/cli/main.ts", import.meta.url).pathname;

/** What a finished command left behind. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `agentgate ...args`; never rejects on a non-zero exit. DATABASE_URL is cleared so only flags count. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ["--import", "tsx", MAIN, ...args],
      { env: { ...process.env, DATABASE_URL: "", AGENTGATE_DATA_DIR: "", ...env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== "number") return reject(err);
        resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
      },
    );
  });
}
