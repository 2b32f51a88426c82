import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { Agent } from "../../gen/coder/agent/v2/agent_pb.js";
import { Tailnet } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { agentService } from "../agentapi/api.js";
import type { BannerSettings } from "../agentapi/banners.js";
import { parseServerConfig, SERVE_USAGE, type ServerConfig } from "../config.js";
import { publishWorkspaceEvent } from "../db/events.js";
import { createLogger, type Logger } from "../log.js";
import { AgentServer } from "../server/agent-server.js";
import { agentServerStore } from "../server/agent-store.js";
import { emptyDerpMapSource, fileDerpMapSource } from "../tailnet/derp-map-source.js";
import { tailnetService } from "../tailnet/tailnet-service.js";
import { openMigratedDatabase } from "./database-options.js";

/** How often StreamDERPMaps looks for a changed map (agent-api.md §3.2). */
const DERP_MAP_POLL_MS = 5_000;

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
  const logger = createLogger({ level: config.logLevel });
  const { db, applied } = await openMigratedDatabase({ "database-url": config.databaseUrl, "data-dir": config.dataDir }, { logger });
  logger.info({ engine: db.engine, applied }, "database ready");
  const replicaId = randomUUID();
  const banners = await readBanners(config);
  const derpMaps = config.derpMapFile ? fileDerpMapSource(config.derpMapFile, (err) => logger.warn({ err }, "DERP map file unreadable; keeping the last good map")) : emptyDerpMapSource();
  await derpMaps.current();

  const server = await AgentServer.start({
    config,
    logger,
    replicaId,
    store: agentServerStore(db, replicaId),
    routes(router) {
      router.service(Agent, agentService({ banners }));
      router.service(Tailnet, tailnetService({ derpMaps, derpMapPollMs: DERP_MAP_POLL_MS }));
    },
    publishConnectionUpdate: (identity) =>
      void publishWorkspaceEvent(db.pubsub, identity.ownerId, { kind: "agt_connection_update", workspace_id: identity.workspaceId, agent_id: identity.agentId }, logger),
  });
  const { address, port } = server.address;
  logger.info({ replica_id: replicaId, url: `http://${address.includes(":") ? `[${address}]` : address}:${port}` }, "agentgate listening");

  await waitForSignal(logger);
  logger.info("shutting down");
  await server.shutdown();
  await db.close();
  logger.info("stopped");
  return 0;
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

async function readBanners(config: ServerConfig): Promise<BannerSettings> {
  if (!config.bannersFile) return {};
  try {
    return JSON.parse(await readFile(config.bannersFile, "utf8")) as BannerSettings;
  } catch (err) {
    throw new Error(`--banners ${config.bannersFile}: ${(err as Error).message}`);
  }
}
