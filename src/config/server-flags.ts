import { DEFAULT_DATA_DIR } from "../db/database.js";
import { byteSize, duration, filePath, folderPath, httpUrl, listenAddress, oneOf, onOff, postgresUrl, processCount, text, wholeNumber } from "./flag-kinds.js";
import { flag } from "./flag.js";

/** pino's levels, quietest last. */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

/** Where the database is: every command that reads or writes agentgate's tables takes these. */
export const databaseFlags = {
  "database-url": flag(postgresUrl, { env: "DATABASE_URL", secret: true, defaultNote: "embedded PGlite in --data-dir", help: "PostgreSQL URL" }),
  "data-dir": flag(folderPath, {
    default: DEFAULT_DATA_DIR,
    help: "PGlite's folder when there is no --database-url; where serve leaves server.json and admin-token",
  }),
};

/** How a process logs: serve and the reference agent take these. */
export const logFlags = {
  "log-level": flag(oneOf(LOG_LEVELS, "LEVEL"), { default: "info", help: "least severe level logged" }),
  "log-format": flag(oneOf(["json", "pretty"], "FORMAT"), { defaultNote: "pretty on a terminal, else json", help: "one JSON object per line, or coloured lines" }),
};

/**
 * How agents' connections are judged: serve uses them, and `status` reading the database computes
 * statuses with the same ones.
 */
export const trackingFlags = {
  "agent-update-interval": flag(duration, { default: "15s", help: "connection-time refresh period; a quiet tunnel gets a WebSocket ping each period, one carrying traffic every fourth" }),
  "agent-inactive-timeout": flag(duration, { defaultNote: "2 × --agent-update-interval", help: "an agent not heard from (a pong or its traffic) for this long, or leaving a ping unanswered this long, is disconnected" }),
};

/** Every flag of `agentgate serve`. */
export const serverFlags = {
  listen: flag(listenAddress, { default: "127.0.0.1:3000", help: "one port for agents, the control API, health and metrics (HTTP/1.1 and h2c)" }),
  "access-url": flag(httpUrl, { defaultNote: "http://<listen>", help: "the URL agents and users reach this server at" }),
  "app-hostname": flag(text, { placeholder: "HOST", default: "", defaultNote: "none", help: "wildcard host for workspace apps, e.g. *.apps.example.com" }),
  workers: flag(processCount, { default: "1", help: "worker processes sharing the port, each its own replica (auto: one per core; above 1 needs --database-url)" }),
  ...databaseFlags,
  ...trackingFlags,
  "agent-stats-interval": flag(duration, { default: "30s", help: "the stats report interval agents are told" }),
  "metadata-flush-interval": flag(duration, { default: "1s", help: "how often agents' metadata is written, many agents per statement" }),
  "usage-flush-interval": flag(duration, { default: "60s", help: "how often used workspaces get last_used_at written" }),
  "block-direct-connections": flag(onOff, { help: "agents relay through DERP only; no STUN in the DERP map" }),
  "derp-force-websockets": flag(onOff, { help: "agents reach DERP over WebSockets only" }),
  "derp-map": flag(filePath, { defaultNote: "an empty map", help: "DERP map JSON, re-read when it changes" }),
  banners: flag(filePath, { defaultNote: "none", help: "service banner JSON" }),
  "shutdown-grace": flag(duration, { default: "10s", help: "how long open RPCs get at shutdown (a second signal exits at once)" }),
  "max-streams-per-agent": flag(wholeNumber(1), { default: "1024", help: "yamux streams one agent may hold open" }),
  "header-timeout": flag(duration, { default: "15s", help: "a request's headers must arrive within this, on the plain port and in tunnels" }),
  "body-idle-timeout": flag(duration, { default: "30s", help: "a request body that pauses for longer is cut (calls that stream requests are exempt)" }),
  "max-request-bytes-per-connection": flag(byteSize(1), { default: "16MiB", help: "request bytes in flight on one connection; past it the call is refused" }),
  "max-request-bytes-per-agent": flag(byteSize(1), { default: "64MiB", help: "bytes in flight over one agent's tunnel, all streams together (yamux windows; request bodies)" }),
  "max-request-bytes": flag(byteSize(1), { default: "256MiB", help: "request bytes in flight in the whole process" }),
  "max-connections": flag(wholeNumber(1), { defaultNote: "the open-file limit − 512", help: "TCP connections open at once; new ones past it are closed" }),
  "max-connections-per-address": flag(wholeNumber(0), { default: "0", defaultNote: "no limit", help: "TCP connections open at once from one remote address" }),
  "connection-reserve": flag(wholeNumber(0), { default: "256", help: "of --max-connections, kept for agents' dials and the control API" }),
  "overload-lag": flag(duration, { default: "500ms", help: "median event-loop lag (over a second) past which new agent dials get 503 with Retry-After" }),
  "max-dials-per-second": flag(wholeNumber(0), { default: "400", help: "agent dials let through per second in each process (0: no bound); the rest wait their turn (up to 10 s) or get 503 with Retry-After" }),
  "max-pending-dials": flag(wholeNumber(1), { default: "4096", help: "agent dials waiting for their turn or being admitted; more get 503 with Retry-After" }),
  "connect-unary": flag(onOff, { help: "serve unary RPCs through connect-node's router too, not the lean HTTP/2 path (for comparison)" }),
  "tunnel-http2": flag(oneOf(["agentgate", "node"], "IMPL"), {
    default: "agentgate",
    help: "what serves HTTP/2 inside agent tunnels: agentgate's own connection, or node:http2 (more CPU and memory per call)",
  }),
  ...logFlags,
  "admin-token": flag(text, {
    placeholder: "TOKEN",
    secret: true,
    defaultNote: "a fresh one each start, written to admin-token",
    help: "bearer token of the control API",
  }),
};
