import { execFile } from "node:child_process";
import type { Client } from "@connectrpc/connect";
import type { Duration } from "@bufbuild/protobuf/wkt";
import type { Agent, WorkspaceAgentMetadata_Description } from "../../gen/coder/agent/v2/agent_pb.js";
import type { Logger } from "../log.js";
import { oneAtATime } from "./one-at-a-time.js";

/** Longest output kept from a metadata script; the server keeps 2,048 bytes of a value anyway. */
const MAX_OUTPUT_BYTES = 64 * 1024;

/**
 * Runs each metadata description's script on its interval, bounded by its timeout, and reports
 * the result with BatchUpdateMetadata. Interval and timeout arrive as Coder sends them: Durations
 * whose nanosecond count is the number of seconds (a quirk of Coder's agent API, kept on the wire).
 */
export function collectMetadata(agent: Client<typeof Agent>, descriptions: WorkspaceAgentMetadata_Description[], logger: Logger, signal: AbortSignal): void {
  for (const d of descriptions) {
    const intervalS = secondsOf(d.interval) || 1;
    const timeoutS = secondsOf(d.timeout) || intervalS;
    const tick = oneAtATime(async () => {
      const result = await runScript(d.script, timeoutS * 1000, signal);
      if (signal.aborted) return;
      await agent
        .batchUpdateMetadata({ metadata: [{ key: d.key, result: { value: result.value, error: result.error } }] }, { signal })
        .catch((err: unknown) => {
          if (!signal.aborted) logger.warn({ key: d.key, err: (err as Error).message }, "metadata not sent");
        });
    });
    void tick();
    const timer = setInterval(() => void tick(), intervalS * 1000);
    signal.addEventListener("abort", () => clearInterval(timer), { once: true });
  }
}

/** The seconds a Coder metadata Duration stands for (its raw nanosecond count). */
function secondsOf(d: Duration | undefined): number {
  return d === undefined ? 0 : Number(d.seconds * 1_000_000_000n + BigInt(d.nanos));
}

function runScript(script: string, timeoutMs: number, signal: AbortSignal): Promise<{ value: string; error: string }> {
  return new Promise((resolve) => {
    execFile("sh", ["-c", script], { timeout: timeoutMs, maxBuffer: MAX_OUTPUT_BYTES, signal }, (err, stdout, stderr) => {
      if (err === null) return resolve({ value: stdout.trim(), error: "" });
      const timedOut = (err as { killed?: boolean }).killed === true;
      resolve({ value: stdout.trim(), error: timedOut ? `timed out after ${timeoutMs / 1000} s` : stderr.trim() || err.message });
    });
  });
}
