import cluster from "node:cluster";
import { answerPoolMetrics, poolMetricsOf } from "../server/pool-metrics.js";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { hostForUrl, serverConfig, type ServerConfig } from "../config.js";
import { serverFlags } from "../config/server-flags.js";
import { generateAdminToken } from "../control/admin-auth.js";
import { createLogger, type Logger } from "../log.js";
import { registerReplica } from "../server/replica-registration.js";
import { startAgentgate } from "../server/start.js";
import { defineCommand } from "./command-spec.js";
import { openMigratedDatabase } from "./database-options.js";
import { ADMIN_TOKEN_FILE, writeServerFiles, type ServerFiles } from "./server-files.js";
import { reportListening, startWorkerPool, waitForPrimary } from "./serve-workers.js";

/**
 * `agentgate serve`: migrate, then serve agents until SIGINT/SIGTERM. The first signal shuts
 * down gracefully (exit 0); a second one exits at once.
 */
export const serveCommand = defineCommand({
  name: "serve",
  summary: "run the server",
  description: `Applies pending migrations, then serves agents, the control API, /healthz, /readyz and /metrics until SIGINT or SIGTERM (a second signal exits at once).

With --workers N (PostgreSQL only), N worker processes share the port, each its own replica with its own replica id; the primary restarts a worker that dies and forwards SIGINT/SIGTERM to all of them for a graceful drain.

Without --admin-token, a fresh token is generated at each start. The server leaves server.json (its URL and pid, so workspace and status on this machine find it) and the generated admin-token in the data folder. On PostgreSQL it does so only when --data-dir is given: otherwise it writes no server.json, and a generated token goes to a private temporary folder, printed at start.`,
  flags: serverFlags,
  async run(resolved) {
    const config = serverConfig(resolved);
    const logger = createLogger({ level: config.logLevel, ...(config.logFormat ? { format: config.logFormat } : {}) });
    if (cluster.isWorker) return serveWorker(config, logger);
    const generatedToken = config.adminToken === undefined ? generateAdminToken() : undefined;
    if (generatedToken !== undefined) config.adminToken = generatedToken;
    const { db, applied } = await openMigratedDatabase({ "database-url": config.databaseUrl, "data-dir": config.dataDir }, { logger });
    logger.info({ engine: db.engine, applied }, "database ready");
    if (config.workers > 1) {
      await db.close();
      return servePrimary(config, generatedToken, resolved.sources["admin-token"] ?? "default", logger);
    }
    const server = await startAgentgate(config, db, logger);
    const replica = await registerReplica(db, server.replicaId, logger);
    const { address, port } = server.address;
    // Written before "listening" is logged, so whoever waits for that line finds them.
    const files = await leaveServerFiles(config.stateDir, { url: `http://${hostForUrl(loopbackFor(address))}:${port}`, pid: process.pid }, generatedToken, logger);
    if (generatedToken === undefined) logger.info(`admin token from the ${resolved.sources["admin-token"]}`);
    logger.info({ replica_id: server.replicaId, url: `http://${hostForUrl(address)}:${port}` }, "agentgate listening");

    await waitForSignal(logger);
    logger.info("shutting down");
    await server.shutdown();
    await replica.stop();
    await db.close();
    await files.remove();
    logger.info("stopped");
  },
});

/**
 * server.json and a generated admin-token into `stateDir`; without one (PostgreSQL, no --data-dir)
 * only the token, into a private temporary folder removed at shutdown.
 */
async function leaveServerFiles(stateDir: string | undefined, server: { url: string; pid: number }, adminToken: string | undefined, logger: Logger): Promise<ServerFiles> {
  if (stateDir === undefined && adminToken === undefined) return { remove: async () => undefined };
  const dir = resolve(stateDir ?? (await mkdtemp(join(tmpdir(), "agentgate-"))));
  const files = await writeServerFiles(dir, { ...(stateDir === undefined ? {} : { server }), adminToken });
  if (adminToken !== undefined) logger.info({ path: join(dir, ADMIN_TOKEN_FILE) }, `admin token written to ${join(dir, ADMIN_TOKEN_FILE)}`);
  if (stateDir !== undefined) return files;
  return {
    async remove() {
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Where a local command reaches a server listening on `address`: a wildcard address means loopback. */
function loopbackFor(address: string): string {
  if (address === "0.0.0.0") return "127.0.0.1";
  if (address === "::") return "::1";
  return address;
}

/**
 * The primary of `--workers N`: forks the workers (the database is migrated already, and they
 * share one admin token), leaves the server files once all listen, and on a signal drains them all.
 */
async function servePrimary(config: ServerConfig, generatedToken: string | undefined, tokenSource: string, logger: Logger): Promise<number> {
  answerPoolMetrics();
  const pool = await startWorkerPool(config.workers, { AGENTGATE_ADMIN_TOKEN: config.adminToken }, logger);
  const { address, port } = pool.address;
  const files = await leaveServerFiles(config.stateDir, { url: `http://${hostForUrl(loopbackFor(address))}:${port}`, pid: process.pid }, generatedToken, logger);
  if (generatedToken === undefined) logger.info(`admin token from the ${tokenSource}`);
  logger.info({ workers: config.workers, replica_ids: pool.replicaIds(), url: `http://${hostForUrl(address)}:${port}` }, "agentgate listening");
  await waitForSignal(logger, () => pool.kill());
  logger.info("shutting down: draining every worker");
  const clean = await pool.shutdown();
  await files.remove();
  logger.info({ clean }, "stopped");
  return clean ? 0 : 1;
}

/** One worker of `--workers N`: a whole server with its own replica id, run until the primary says drain. */
async function serveWorker(config: ServerConfig, logger: Logger): Promise<void> {
  logger = logger.child({ worker: Number(process.env.AGENTGATE_WORKER_INDEX ?? 0) });
  const { db } = await openMigratedDatabase({ "database-url": config.databaseUrl, "data-dir": config.dataDir }, { logger });
  const server = await startAgentgate(config, db, logger);
  // A scrape lands on whichever worker accepts it: it answers for the whole pool.
  server.metrics.text = poolMetricsOf(server.metrics.registry);
  const replica = await registerReplica(db, server.replicaId, logger);
  reportListening({ replicaId: server.replicaId, ...server.address });
  await waitForPrimary(logger);
  await server.shutdown();
  await replica.stop();
  await db.close();
  logger.info("worker stopped");
  // The IPC channel to the primary is the last thing keeping this process alive.
  if (process.connected) process.disconnect();
}

/** Resolves on the first SIGINT/SIGTERM; a second one runs `onSecond` and exits the process at once. */
function waitForSignal(logger: Logger, onSecond: () => void = () => undefined): Promise<void> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      logger.info({ signal }, "signal received");
      process.removeListener("SIGINT", onSignal);
      process.removeListener("SIGTERM", onSignal);
      const again = () => {
        logger.warn("second signal: exiting now");
        onSecond();
        process.exit(1);
      };
      process.once("SIGINT", again);
      process.once("SIGTERM", again);
      resolve();
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}
