import { parseServerConfig, SERVE_USAGE } from "../config.js";
import { generateAdminToken } from "../control/admin-auth.js";
import { createLogger, type Logger } from "../log.js";
import { registerReplica } from "../server/replica-registration.js";
import { startAgentgate } from "../server/start.js";
import { openMigratedDatabase } from "./database-options.js";
import { writeServerFiles } from "./server-files.js";

/**
 * `agentgate serve`: migrate, then serve agents until SIGINT/SIGTERM. The first signal shuts
 * down gracefully (exit 0); a second one exits at once.
 */
export async function runServe(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(SERVE_USAGE);
    return 0;
  }
  const config = parseServerConfig(argv);
  // Without --admin-token, a fresh one each start, left in the data folder for the operator.
  const generatedToken = config.adminToken === undefined ? generateAdminToken() : undefined;
  if (generatedToken !== undefined) config.adminToken = generatedToken;
  const logger = createLogger({ level: config.logLevel });
  const { db, applied } = await openMigratedDatabase({ "database-url": config.databaseUrl, "data-dir": config.dataDir }, { logger });
  logger.info({ engine: db.engine, applied }, "database ready");
  const server = await startAgentgate(config, db, logger);
  const replica = await registerReplica(db, server.replicaId, logger);
  const { address, port } = server.address;
  // Written before "listening" is logged, so whoever waits for that line finds them.
  const files = await writeServerFiles(config.dataDir, { url: `http://${hostForUrl(loopbackFor(address))}:${port}`, pid: process.pid }, generatedToken);
  logger.info({ replica_id: server.replicaId, url: `http://${hostForUrl(address)}:${port}` }, "agentgate listening");

  await waitForSignal(logger);
  logger.info("shutting down");
  await server.shutdown();
  await replica.stop();
  await db.close();
  await files.remove();
  logger.info("stopped");
  return 0;
}

function hostForUrl(address: string): string {
  return address.includes(":") ? `[${address}]` : address;
}

/** Where a local command reaches a server listening on `address`: a wildcard address means loopback. */
function loopbackFor(address: string): string {
  if (address === "0.0.0.0") return "127.0.0.1";
  if (address === "::") return "::1";
  return address;
}

/** Resolves on the first SIGINT/SIGTERM; a second one exits the process at once. */
function waitForSignal(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      logger.info({ signal }, "signal received");
      process.removeListener("SIGINT", onSignal);
      process.removeListener("SIGTERM", onSignal);
      const again = () => {
        logger.warn("second signal: exiting now");
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
