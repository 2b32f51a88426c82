import { pino, type Logger } from "pino";

export type { Logger };

/** Options for the process logger. */
export interface LogOptions {
  /** pino level; default "info". */
  level?: string;
  /** Human-readable lines instead of JSON; default: when stdout is a TTY. */
  pretty?: boolean;
}

/**
 * The one process logger. Everything else gets a child of it (`logger.child({agent_id})`).
 * Tokens are redacted wherever they appear under these keys, so a careless field can't leak one.
 */
export function createLogger(options: LogOptions = {}): Logger {
  const pretty = options.pretty ?? process.stdout.isTTY === true;
  return pino({
    level: options.level ?? process.env.AGENTGATE_LOG_LEVEL ?? "info",
    redact: { paths: ["token", "auth_token", "*.token", "*.auth_token", "headers.cookie", "headers.authorization", 'headers["coder-session-token"]'], censor: "[redacted]" },
    ...(pretty ? { transport: { target: "pino-pretty", options: { colorize: true } } } : {}),
  });
}

/** A logger that drops everything: for tests and library callers that pass none. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
