import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { create } from "@bufbuild/protobuf";
import { durationMs, timestampNow } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import { Log_Level, LogSchema, Timing_Stage, Timing_Status, type Agent, type Log, type WorkspaceAgentScript } from "../../gen/coder/agent/v2/agent_pb.js";
import type { Logger } from "../log.js";

/** The server refuses longer lines (varchar(1024)); cut them instead of losing the batch. */
const MAX_LINE_CHARS = 1024;
/** Lines go out in batches of at most this many, or after this long, whichever comes first. */
const LOG_BATCH_LINES = 100;
const LOG_FLUSH_MS = 250;

/**
 * Runs the manifest's start scripts (`run_on_start`) with `sh -c`, in parallel, each bounded by
 * its timeout. Every stdout/stderr line is streamed to BatchCreateLogs under the script's log
 * source; at exit ScriptCompleted records the run. Resolves true when every script succeeded.
 */
export async function runStartScripts(agent: Client<typeof Agent>, scripts: WorkspaceAgentScript[], logger: Logger, signal: AbortSignal): Promise<boolean> {
  const results = await Promise.all(scripts.filter((s) => s.runOnStart).map((s) => runScript(agent, s, logger, signal)));
  return results.every(Boolean);
}

async function runScript(agent: Client<typeof Agent>, script: WorkspaceAgentScript, logger: Logger, signal: AbortSignal): Promise<boolean> {
  const name = script.displayName || "script";
  const logs = new LogSender(agent, script.logSourceId, logger.child({ script: name }), signal);
  const start = timestampNow();
  const child = spawn("sh", ["-c", script.script], { stdio: ["ignore", "pipe", "pipe"], signal });
  child.on("error", () => undefined);
  const timeoutMs = script.timeout ? durationMs(script.timeout) : 0;
  let timedOut = false;
  const timer = timeoutMs > 0 ? setTimeout(() => ((timedOut = true), child.kill("SIGTERM")), timeoutMs) : undefined;
  const streams = [child.stdout, child.stderr].map(
    (stream, i) =>
      new Promise<void>((resolve) => {
        const lines = createInterface({ input: stream });
        lines.on("line", (line) => logs.add(line, i === 0 ? Log_Level.INFO : Log_Level.ERROR));
        lines.on("close", resolve);
      }),
  );
  const exitCode = await new Promise<number>((resolve) => child.on("close", (code) => resolve(code ?? -1)));
  clearTimeout(timer);
  await Promise.all(streams);
  await logs.flush();
  const status = timedOut ? Timing_Status.TIMED_OUT : exitCode === 0 ? Timing_Status.OK : Timing_Status.EXIT_FAILURE;
  logger.info({ script: name, exit_code: exitCode, status: Timing_Status[status].toLowerCase() }, "script finished");
  await agent
    .scriptCompleted({ timing: { scriptId: script.id, start, end: timestampNow(), exitCode, stage: Timing_Stage.START, status } }, { signal })
    .catch((err: unknown) => logger.warn({ script: name, err: (err as Error).message }, "script timing not sent"));
  return status === Timing_Status.OK;
}

/** Batches a script's lines into BatchCreateLogs calls, one at a time, in order; stops at the server's cap. */
class LogSender {
  private pending: Log[] = [];
  private timer: NodeJS.Timeout | undefined;
  private sending: Promise<void> = Promise.resolve();
  private limitReached = false;

  constructor(
    private readonly agent: Client<typeof Agent>,
    private readonly sourceId: Uint8Array,
    private readonly logger: Logger,
    private readonly signal: AbortSignal,
  ) {}

  add(output: string, level: Log_Level): void {
    if (this.limitReached) return;
    this.pending.push(create(LogSchema, { createdAt: timestampNow(), output: [...output].slice(0, MAX_LINE_CHARS).join(""), level }));
    if (this.pending.length >= LOG_BATCH_LINES) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), LOG_FLUSH_MS);
  }

  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    this.pending = [];
    if (batch.length > 0) {
      this.sending = this.sending.then(async () => {
        if (this.limitReached) return;
        try {
          const res = await this.agent.batchCreateLogs({ logSourceId: this.sourceId, logs: batch }, { signal: this.signal });
          if (res.logLimitExceeded) {
            this.limitReached = true;
            this.logger.warn("the server's log limit is reached; further lines are not sent");
          }
        } catch (err) {
          this.logger.warn({ err: (err as Error).message, lines: batch.length }, "log lines not sent");
        }
      });
    }
    return this.sending;
  }
}
