import { readFileSync } from "node:fs";
import { resolveFlags, type FlagInputs, type ResolvedFlags } from "./config/flag.js";
import { serverFlags } from "./config/server-flags.js";
import { UsageError } from "./config/usage-error.js";

/** Everything `agentgate serve` can be told, typed and defaulted; each field's flag is in `config/server-flags.ts`. */
export interface ServerConfig {
  /** Where the HTTP server listens (`--listen`). */
  listen: { host: string; port: number };
  /** The URL agents and users reach this server at (`--access-url`); default http://<listen>. */
  accessUrl: URL;
  /** Wildcard host for workspace apps, e.g. `*.apps.example.com` (`--app-hostname`); "" for none. */
  appHostname: string;
  /** Worker processes on the one port, each its own replica (`--workers`); 1 serves in this process. */
  workers: number;
  /** PostgreSQL URL (`--database-url`); without it, embedded PGlite in `dataDir`. */
  databaseUrl?: string;
  /** PGlite data folder (`--data-dir`). */
  dataDir: string;
  /**
   * Where `serve` leaves `server.json` and a generated `admin-token`: the data folder on PGlite;
   * on PostgreSQL only a `--data-dir` given explicitly, so that a later plain `status` is never led
   * from the default PGlite folder to a server on another database. Undefined: nowhere.
   */
  stateDir?: string;
  /** Ping and connection-time refresh period (`--agent-update-interval`). */
  agentUpdateIntervalMs: number;
  /** No pong for this long disconnects an agent (`--agent-inactive-timeout`); default 2 × the update interval. */
  agentInactiveTimeoutMs: number;
  /** Stats report interval returned to agents (`--agent-stats-interval`). */
  agentStatsIntervalMs: number;
  /** How often the metadata batcher writes agents' metadata (`--metadata-flush-interval`); short, so watchers stay responsive. */
  metadataFlushIntervalMs: number;
  /** How often used workspaces get `last_used_at` written (`--usage-flush-interval`); 60 s, as Coder. */
  usageFlushIntervalMs: number;
  /** Tell agents to relay through DERP only, with no STUN in the map (`--block-direct-connections`). */
  blockDirectConnections: boolean;
  /** Tell agents to reach DERP over WebSockets only (`--derp-force-websockets`). */
  derpForceWebsockets: boolean;
  /** DERP map JSON file (`--derp-map`); empty map when unset. */
  derpMapFile: string | undefined;
  /** Banners JSON file (`--banners`); no banners when unset. */
  bannersFile: string | undefined;
  /** How long shutdown lets open RPCs finish (`--shutdown-grace`). */
  shutdownGraceMs: number;
  /** Most yamux streams one agent may have open (`--max-streams-per-agent`). */
  maxStreamsPerAgent: number;
  /** A request's headers must arrive within this (`--header-timeout`), plain port and tunnels alike. */
  headerTimeoutMs: number;
  /** A request body pausing longer than this is cut (`--body-idle-timeout`); calls that stream requests are exempt. */
  bodyIdleTimeoutMs: number;
  /** Request bytes in flight on one connection (`--max-request-bytes-per-connection`). */
  maxRequestBytesPerConnection: number;
  /** Request bytes in flight over one agent's tunnel, all streams together (`--max-request-bytes-per-agent`). */
  maxRequestBytesPerAgent: number;
  /** Request bytes in flight in the process (`--max-request-bytes`). */
  maxRequestBytes: number;
  /** TCP connections open at once (`--max-connections`); default the open-file limit less 512. */
  maxConnections: number;
  /** TCP connections open at once from one address (`--max-connections-per-address`); 0: no limit. */
  maxConnectionsPerAddress: number;
  /** Connections of `maxConnections` only agents' dials and the control API may take (`--connection-reserve`). */
  connectionReserve: number;
  /** Event-loop lag past which new agent dials get 503 (`--overload-lag`). */
  overloadLagMs: number;
  /** Agent dials let through per second in this process, 0 for no bound (`--max-dials-per-second`). */
  maxDialsPerSecond: number;
  /** Agent dials being admitted at once; more get 503 (`--max-pending-dials`). */
  maxPendingDials: number;
  /**
   * Serve binary unary gRPC and Connect calls on the lean HTTP/2 path; false sends every call
   * through connect-node's router (`--connect-unary`), for comparison.
   */
  leanUnary: boolean;
  /** What serves HTTP/2 inside agent tunnels (`--tunnel-http2`): node:http2, or agentgate's own connection. */
  tunnelHttp2: "node" | "agentgate";
  /** pino level (`--log-level`). */
  logLevel: string;
  /** `--log-format`; undefined: pretty on a terminal, else JSON. */
  logFormat?: "json" | "pretty";
  /** Bearer token of the control API (`--admin-token`); `serve` generates one when unset. */
  adminToken?: string;
  /** How often this replica writes its tailnet heartbeat. No flag: Coder's 2 s; tests shorten it. */
  tailnetHeartbeatIntervalMs: number;
  /** A replica silent for this long is dead and its peers are lost. No flag: Coder's 6 s (3 heartbeats). */
  tailnetReplicaTimeoutMs: number;
  /** How often every peer's picture is re-read whatever the notifications said. No flag: Coder's 30 s. */
  tailnetFullRefreshIntervalMs: number;
}

/** The tailnet intervals of every server: Coder's HA coordinator's. */
export const TAILNET_INTERVALS = { tailnetHeartbeatIntervalMs: 2_000, tailnetReplicaTimeoutMs: 6_000, tailnetFullRefreshIntervalMs: 30_000 } as const;

/**
 * The config of `serve` from its flags' sources (command line, environment, config file), over
 * the declared defaults. Throws {@link UsageError} naming the flag on bad input. Tests and
 * benchmarks call it with a few command-line values and no environment.
 */
export function loadServerConfig(inputs: FlagInputs = {}): ServerConfig {
  return serverConfig(resolveFlags(serverFlags, inputs));
}

/** The typed config from resolved `serve` flags, with the defaults that depend on other flags. */
export function serverConfig({ values: v, sources }: ResolvedFlags<typeof serverFlags>): ServerConfig {
  const updateMs = v["agent-update-interval"];
  const inactiveMs = inactiveTimeoutMs(v);
  const databaseUrl = v["database-url"];
  // PGlite lets one process open its folder: more than one worker needs a shared PostgreSQL.
  if (v.workers > 1 && databaseUrl === undefined) throw new UsageError("--workers above 1 needs --database-url: the embedded database serves one process");
  return {
    listen: v.listen,
    accessUrl: v["access-url"] ?? new URL(`http://${hostForUrl(v.listen.host)}:${v.listen.port}`),
    appHostname: v["app-hostname"],
    workers: v.workers,
    ...(databaseUrl === undefined ? {} : { databaseUrl }),
    dataDir: v["data-dir"],
    ...(databaseUrl === undefined || sources["data-dir"] !== "default" ? { stateDir: v["data-dir"] } : {}),
    agentUpdateIntervalMs: updateMs,
    agentInactiveTimeoutMs: inactiveMs,
    agentStatsIntervalMs: v["agent-stats-interval"],
    metadataFlushIntervalMs: v["metadata-flush-interval"],
    usageFlushIntervalMs: v["usage-flush-interval"],
    blockDirectConnections: v["block-direct-connections"],
    derpForceWebsockets: v["derp-force-websockets"],
    derpMapFile: v["derp-map"],
    bannersFile: v.banners,
    shutdownGraceMs: v["shutdown-grace"],
    maxStreamsPerAgent: v["max-streams-per-agent"],
    headerTimeoutMs: v["header-timeout"],
    bodyIdleTimeoutMs: v["body-idle-timeout"],
    maxRequestBytesPerConnection: v["max-request-bytes-per-connection"],
    maxRequestBytesPerAgent: v["max-request-bytes-per-agent"],
    maxRequestBytes: v["max-request-bytes"],
    maxConnections: v["max-connections"] ?? defaultMaxConnections(),
    maxConnectionsPerAddress: v["max-connections-per-address"],
    connectionReserve: v["connection-reserve"],
    overloadLagMs: v["overload-lag"],
    maxDialsPerSecond: v["max-dials-per-second"],
    maxPendingDials: v["max-pending-dials"],
    leanUnary: !v["connect-unary"],
    tunnelHttp2: v["tunnel-http2"],
    logLevel: v["log-level"],
    ...(v["log-format"] === undefined ? {} : { logFormat: v["log-format"] }),
    // An empty token would match an empty Authorization and prove nothing: it means none.
    ...(v["admin-token"] ? { adminToken: v["admin-token"] } : {}),
    ...TAILNET_INTERVALS,
  };
}

/** `--agent-inactive-timeout`, else twice the update interval; never shorter than that interval. */
export function inactiveTimeoutMs(v: { "agent-update-interval": number; "agent-inactive-timeout": number | undefined }): number {
  const updateMs = v["agent-update-interval"];
  const inactiveMs = v["agent-inactive-timeout"] ?? 2 * updateMs;
  if (inactiveMs < updateMs) throw new UsageError("--agent-inactive-timeout must be at least --agent-update-interval");
  return inactiveMs;
}

/** Descriptors kept free of connections: the database pool, log files, DNS. */
const FILE_HEADROOM = 512;

/** Connections the process can hold without running out of descriptors for everything else. */
function defaultMaxConnections(): number {
  return Math.max(openFileLimit() - FILE_HEADROOM, FILE_HEADROOM);
}

/** RLIMIT_NOFILE's soft limit (Node raises it to the hard one at start), from /proc; 4096 elsewhere. */
function openFileLimit(): number {
  try {
    const line = readFileSync("/proc/self/limits", "utf8").split("\n").find((l) => l.startsWith("Max open files"));
    const soft = Number(line?.split(/\s{2,}/)[1]);
    return Number.isSafeInteger(soft) ? soft : 4096;
  } catch {
    return 4096;
  }
}

/** A host as it goes into a URL: IPv6 in brackets. */
export function hostForUrl(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}
