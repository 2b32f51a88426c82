import { pino, type Logger } from "pino";
import { turnBatchedStdout } from "./log-destination.js";

export type { Logger };

/** Options for the process logger. */
export interface LogOptions {
  /** pino level; default "info". */
  level?: string;
  /** "pretty": coloured human-readable lines; "json": one object per line. Default: pretty when stdout is a TTY. */
  format?: "json" | "pretty";
}

/**
 * The one process logger. Everything else gets a child of it (`logger.child({agent_id})`).
 * Levels are written as words (`"level":"info"`), which log shippers read without pino's number
 * table. Tokens are redacted wherever they appear under these keys, so a careless field can't leak one.
 */
export function createLogger(options: LogOptions = {}): Logger {
  const pretty = (options.format ?? (process.stdout.isTTY === true ? "pretty" : "json")) === "pretty";
  const settings = {
    level: options.level ?? "info",
    formatters: { level: (label: string) => ({ level: label }) },
    redact: { paths: ["token", "auth_token", "*.token", "*.auth_token", "headers.cookie", "headers.authorization", 'headers["coder-session-token"]'], censor: "[redacted]" },
  };
  if (pretty) return pino({ ...settings, transport: { target: "pino-pretty", options: { colorize: true } } });
  return pino(settings, turnBatchedStdout());
}

/** A logger that drops everything: for tests and library callers that pass none. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
