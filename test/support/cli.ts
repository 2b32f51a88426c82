/** Runs the real `agentgate` command (src/cli/main.ts under tsx) as a child process. */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

const MAIN = new URL("../../src/cli/main.ts", import.meta.url).pathname;
/** tsx by absolute URL, so the command also runs from a folder outside this checkout. */
const TSX = import.meta.resolve("tsx");
/** The variables that would otherwise lead a command elsewhere: only what a test passes counts. */
const CLEARED = { DATABASE_URL: "", AGENTGATE_DATA_DIR: "", AGENTGATE_URL: "", AGENTGATE_ADMIN_TOKEN: "", AGENTGATE_CONFIG: "", AGENTGATE_LOG_LEVEL: "", AGENTGATE_LOG_FORMAT: "" };

/** What a finished command left behind. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Commands run at once by one test file. A test that starts dozens together (every command's
 * --help) would otherwise have them share two cores, and the last would pass its timeout
 * waiting, not running.
 */
const MAX_RUNNING = 4;
let running = 0;
const queued: (() => void)[] = [];

/** Runs `run` once fewer than MAX_RUNNING commands run; a finished one hands its slot to the next waiting. */
async function slot<T>(run: () => Promise<T>): Promise<T> {
  if (running >= MAX_RUNNING) await new Promise<void>((r) => queued.push(r));
  else running++;
  try {
    return await run();
  } finally {
    const next = queued.shift();
    if (next) next();
    else running--;
  }
}

/** Runs `agentgate ...args`; never rejects on a non-zero exit. The variables in CLEARED are unset unless `env` sets them. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, opts: { cwd?: string } = {}): Promise<CliResult> {
  return slot(() => runCliNow(args, env, opts));
}

function runCliNow(args: string[], env: NodeJS.ProcessEnv, opts: { cwd?: string }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ["--import", TSX, MAIN, ...args],
      { env: { ...process.env, ...CLEARED, ...env }, timeout: 120_000, ...opts },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== "number") return reject(err);
        resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
      },
    );
  });
}

/** A long-running `agentgate` (serve, agent) whose stdout is JSON log lines. */
export interface CliProcess {
  child: ChildProcess;
  /** Every log line so far. */
  readonly lines: Record<string, unknown>[];
  /** Everything written to stderr so far. */
  readonly stderr: () => string;
  /** Resolves with the first line (seen or to come) that `match` accepts; rejects when the process exits first or after `timeoutMs`. */
  waitForLine(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
}

/** Starts `agentgate ...args` with JSON logs. */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}, opts: { cwd?: string } = {}): CliProcess {
  const child = spawn(process.execPath, ["--import", TSX, MAIN, ...args], {
    env: { ...process.env, ...CLEARED, AGENTGATE_LOG_FORMAT: "json", ...env },
    stdio: ["ignore", "pipe", "pipe"],
    ...opts,
  });
  const lines: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  createInterface({ input: child.stdout! }).on("line", (text) => {
    lines.push(JSON.parse(text) as Record<string, unknown>);
    for (const w of waiters) w();
  });
  // "close", not "exit": by then every line of stdout has been read.
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  return {
    child,
    lines,
    stderr: () => stderr,
    exited,
    waitForLine(match, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const line = lines.find(match);
          if (line === undefined) return;
          done();
          resolve(line);
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no such log line within ${timeoutMs} ms; stderr: ${stderr}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        void exited.then((code) => {
          if (!waiters.has(check)) return;
          done();
          reject(new Error(`exited with ${code} first; stderr: ${stderr}`));
        });
        check();
      });
    },
  };
}

/** The option items of a `--help` text: one string per option, its wrapped lines joined. */
export function helpOptionItems(help: string): string[] {
  const section = help.split("\nOptions:\n")[1]!.split("\n\n")[0]!;
  const items: string[] = [];
  for (const line of section.split("\n")) {
    if (/^ {2}-/.test(line)) items.push(line);
    else items[items.length - 1] += ` ${line.trim()}`;
  }
  return items;
}
