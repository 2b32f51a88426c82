/** Every query module, as a namespace per table: `import { agents } from "../db/queries/index.js"`. */
export * as agents from "./agents.js";
export * as appStatuses from "./app-statuses.js";
export * as apps from "./apps.js";
export * as builds from "./builds.js";
export * as connectionLogs from "./connection-logs.js";
export * as devcontainers from "./devcontainers.js";
export * as logSources from "./log-sources.js";
export * as logs from "./logs.js";
export * as metadata from "./metadata.js";
export * as replicas from "./replicas.js";
export * as resourceMonitors from "./resource-monitors.js";
export * as resources from "./resources.js";
export * as scriptTimings from "./script-timings.js";
export * as scripts from "./scripts.js";
export * as stats from "./stats.js";
export * as users from "./users.js";
export * as workspaces from "./workspaces.js";
