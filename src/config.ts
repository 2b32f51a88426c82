import { parseArgs } from "node:util";
import { databaseOptions, resolveDatabaseLocation } from "./cli/database-options.js";
import { parseDuration } from "./duration.js";

/** Everything `agentgate serve` can be told, typed and defaulted. */
export interface ServerConfig {
  /** Where the HTTP server listens (`--listen`, `AGENTGATE_LISTEN`); default 127.0.0.1:3000. */
  listen: { host: string; port: number };
  /** The URL agents and users reach this server at (`--access-url`); default http://<listen>. */
  accessUrl: URL;
  /** Wildcard host for workspace apps, e.g. `*.apps.example.com` (`--app-hostname`); "" for none. */
  appHostname: string;
  /** PostgreSQL URL (`--database-url`, `DATABASE_URL`); without it, embedded PGlite in `dataDir`. */
  databaseUrl?: string;
  /** PGlite data folder (`--data-dir`, `AGENTGATE_DATA_DIR`); default ./.agentgate. */
  dataDir: string;
  /** Ping and connection-time refresh period (`--agent-update-interval`); default 15 s. */
  agentUpdateIntervalMs: number;
  /** No pong for this long disconnects an agent (`--agent-inactive-timeout`); default 2 × the update interval. */
  agentInactiveTimeoutMs: number;
  /** Stats report interval returned to agents (`--agent-stats-interval`); default 30 s. */
  agentStatsIntervalMs: number;
  /** How often the metadata batcher writes agents' metadata (`--metadata-flush-interval`); default 1 s, so watchers stay responsive. */
  metadataFlushIntervalMs: number;
  /** How often used workspaces get `last_used_at` written (`--usage-flush-interval`); default 60 s, as Coder. */
  usageFlushIntervalMs: number;
  /** Tell agents to relay through DERP only, with no STUN in the map (`--block-direct-connections`); default off. */
  blockDirectConnections: boolean;
  /** Tell agents to reach DERP over WebSockets only (`--derp-force-websockets`); default off. */
  derpForceWebsockets: boolean;
  /** DERP map JSON file (`--derp-map`); empty map when unset. */
  derpMapFile: string | undefined;
  /** Banners JSON file (`--banners`); no banners when unset. */
  bannersFile: string | undefined;
  /** How long shutdown lets open RPCs finish (`--shutdown-grace`); default 10 s. */
  shutdownGraceMs: number;
  /** Most yamux streams one agent may have open (`--max-streams-per-agent`); default 1024. */
  maxStreamsPerAgent: number;
  /** pino level (`--log-level`, `AGENTGATE_LOG_LEVEL`); default info. */
  logLevel: string;
  /** Bearer token of the control API (`--admin-token`, `AGENTGATE_ADMIN_TOKEN`); `serve` generates one when unset. */
  adminToken?: string;
}

const options = {
  ...databaseOptions,
  listen: { type: "string" },
  "access-url": { type: "string" },
  "app-hostname": { type: "string" },
  "agent-update-interval": { type: "string" },
  "agent-inactive-timeout": { type: "string" },
  "agent-stats-interval": { type: "string" },
  "metadata-flush-interval": { type: "string" },
  "usage-flush-interval": { type: "string" },
  "block-direct-connections": { type: "boolean" },
  "derp-force-websockets": { type: "boolean" },
  "derp-map": { type: "string" },
  banners: { type: "string" },
  "shutdown-grace": { type: "string" },
  "max-streams-per-agent": { type: "string" },
  "log-level": { type: "string" },
  "admin-token": { type: "string" },
} as const;

/** `--help` text for `serve`, one line per flag, with its default. */
export const SERVE_USAGE = `usage: agentgate serve [flags]

  --listen HOST:PORT              listen address (AGENTGATE_LISTEN; default 127.0.0.1:3000)
  --access-url URL                URL agents reach this server at (AGENTGATE_ACCESS_URL; default http://<listen>)
  --app-hostname HOST             wildcard app host, e.g. *.apps.example.com (AGENTGATE_APP_HOSTNAME)
  --database-url URL              PostgreSQL URL (DATABASE_URL); default: embedded PGlite
  --data-dir DIR                  PGlite data folder (AGENTGATE_DATA_DIR; default ./.agentgate)
  --agent-update-interval DUR     ping and heartbeat period (default 15s)
  --agent-inactive-timeout DUR    disconnect after this long without a pong (default 2 x update interval)
  --agent-stats-interval DUR      stats report interval given to agents (default 30s)
  --metadata-flush-interval DUR   how often agents' metadata is written, many agents per statement (default 1s)
  --usage-flush-interval DUR      how often used workspaces get last_used_at written (default 60s)
  --block-direct-connections      agents relay through DERP only; no STUN in the DERP map (default off)
  --derp-force-websockets         agents reach DERP over WebSockets only (default off)
  --derp-map FILE                 DERP map JSON (default: empty)
  --banners FILE                  banners JSON (default: none)
  --shutdown-grace DUR            time open RPCs get at shutdown (default 10s)
  --max-streams-per-agent N       yamux streams one agent may open (default 1024)
  --log-level LEVEL               trace, debug, info, warn, error (AGENTGATE_LOG_LEVEL; default info)
  --admin-token TOKEN             control API bearer token (AGENTGATE_ADMIN_TOKEN; default: a random one in <data-dir>/admin-token)
`;

/** Parses `serve` flags over environment variables over defaults; throws with the flag's name on bad input. */
export function parseServerConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  const listenText = values.listen ?? env.AGENTGATE_LISTEN ?? "127.0.0.1:3000";
  const listen = parseListen(listenText);
  const updateMs = durationFlag("agent-update-interval", values["agent-update-interval"], 15_000);
  const inactiveMs = durationFlag("agent-inactive-timeout", values["agent-inactive-timeout"], 2 * updateMs);
  if (inactiveMs < updateMs) throw new Error("--agent-inactive-timeout must be at least --agent-update-interval");
  const maxStreams = Number(values["max-streams-per-agent"] ?? 1024);
  if (!Number.isInteger(maxStreams) || maxStreams < 1) throw new Error("--max-streams-per-agent: want a positive integer");
  const accessUrlText = values["access-url"] ?? env.AGENTGATE_ACCESS_URL ?? `http://${listenText}`;
  let accessUrl: URL;
  try {
    accessUrl = new URL(accessUrlText);
  } catch {
    throw new Error(`--access-url: not a URL: "${accessUrlText}"`);
  }
  return {
    listen,
    accessUrl,
    appHostname: values["app-hostname"] ?? env.AGENTGATE_APP_HOSTNAME ?? "",
    ...resolveDatabaseLocation(values, env),
    agentUpdateIntervalMs: updateMs,
    agentInactiveTimeoutMs: inactiveMs,
    agentStatsIntervalMs: durationFlag("agent-stats-interval", values["agent-stats-interval"], 30_000),
    metadataFlushIntervalMs: durationFlag("metadata-flush-interval", values["metadata-flush-interval"], 1_000),
    usageFlushIntervalMs: durationFlag("usage-flush-interval", values["usage-flush-interval"], 60_000),
    blockDirectConnections: values["block-direct-connections"] ?? false,
    derpForceWebsockets: values["derp-force-websockets"] ?? false,
    derpMapFile: values["derp-map"],
    bannersFile: values.banners,
    shutdownGraceMs: durationFlag("shutdown-grace", values["shutdown-grace"], 10_000),
    maxStreamsPerAgent: maxStreams,
    logLevel: values["log-level"] ?? env.AGENTGATE_LOG_LEVEL ?? "info",
    ...optionalAdminToken(values["admin-token"] || env.AGENTGATE_ADMIN_TOKEN),
  };
}

/** An empty token means none: it would match an empty `Authorization` and prove nothing. */
function optionalAdminToken(token: string | undefined): { adminToken?: string } {
  return token ? { adminToken: token } : {};
}

function durationFlag(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  try {
    const ms = parseDuration(text);
    if (ms <= 0) throw new Error("must be positive");
    return ms;
  } catch (err) {
    throw new Error(`--${name}: ${(err as Error).message}`);
  }
}

/** Splits "host:port" or "[::1]:port". */
export function parseListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(":");
  const host = listen.slice(0, i).replace(/^\[|\]$/g, "");
  const port = Number(listen.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`--listen: want host:port, got "${listen}"`);
  }
  return { host, port };
}
