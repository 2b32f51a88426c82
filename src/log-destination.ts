import { hostname } from "node:os";
import { pino } from "pino";

/** What pino writes its lines to: anything with `write(line)`. */
export interface LineSink {
  write(line: string): void;
}

/** Log bytes held while standard output is not read; lines past it are dropped and counted. */
export const MAX_HELD_LOG_BYTES = 16 * 1024 * 1024;

/**
 * Standard output with the lines of one event-loop turn written together, without ever
 * blocking the event loop.
 *
 * pino's own destination writes each line with a write of its own; a server admitting hundreds
 * of agents a second logs a line for each, and on a virtual machine where a write costs tens of
 * microseconds, that was 3 % of a busy worker's time. Lines wait at most until the turn's
 * immediates run. Writes are asynchronous: written synchronously, a full pipe (a log reader
 * falling behind while 10,000 agents reconnect) made pino sleep 100 ms at a time on the event
 * loop, holding up every agent's RPCs. While the reader is behind, up to MAX_HELD_LOG_BYTES
 * wait; lines past that are dropped, and a warning says how many once lines go out again.
 * What is held is written synchronously when the process exits.
 */
export function turnBatchedStdout(): LineSink {
  const out = pino.destination({ dest: 1, sync: false, maxLength: MAX_HELD_LOG_BYTES });
  // Nowhere to report it: a server whose log reader went away still serves.
  out.on("error", () => undefined);
  // Lines dropped and not yet reported; a write that carries the report clears it unless it is
  // dropped too (then its lines join the count, the report itself not).
  let droppedLines = 0;
  let reportInWrite = false;
  let writeDropped = false;
  out.on("drop", (data: string | Buffer) => {
    writeDropped = true;
    droppedLines += countLines(data) - (reportInWrite ? 1 : 0);
  });
  let pending = "";
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (pending.length === 0 && droppedLines === 0) return;
    const reported = droppedLines;
    reportInWrite = reported > 0;
    writeDropped = false;
    const lines = reportInWrite ? droppedNotice(reported) + pending : pending;
    pending = "";
    out.write(lines);
    if (!writeDropped) droppedLines -= reported;
    reportInWrite = false;
  };
  process.once("exit", () => {
    try {
      out.flushSync(); // what is held first, so the last lines (and the drop warning) fit
      flush();
      out.flushSync();
    } catch {
      // stdout is gone or was never ready: nothing more to do on the way out.
    }
  });
  return {
    write(line) {
      pending += line;
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
  };
}

function countLines(data: string | Buffer): number {
  let n = 0;
  for (let i = data.indexOf("\n"); i !== -1; i = data.indexOf("\n", i + 1)) n++;
  return n;
}

/** The warning that `lines` were dropped, in the shape of the logger's own JSON lines. */
function droppedNotice(lines: number): string {
  return (
    JSON.stringify({
      level: "warn",
      time: Date.now(),
      pid: process.pid,
      hostname: hostname(),
      dropped_lines: lines,
      msg: "log lines dropped: standard output was not read fast enough",
    }) + "\n"
  );
}
