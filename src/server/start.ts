import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { Agent } from "../../gen/coder/agent/v2/agent_pb.js";
import { Tailnet } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { ControlService } from "../../gen/agentgate/control/v1/control_pb.js";
import { controlService } from "../control/control-service.js";
import { metricsStatsSource, ServerStatsSampler } from "../control/server-stats.js";
import { agentService } from "../agentapi/api.js";
import type { BannerSettings } from "../agentapi/banners.js";
import { createMetadataBatcher, createStatsBatcher } from "../agentapi/batchers.js";
import { UsageTracker } from "../agentapi/usage-tracker.js";
import type { Batcher } from "../db/batcher.js";
import type { ServerConfig } from "../config.js";
import type { Database } from "../db/database.js";
import { AGENT_METADATA_BATCH_CHANNEL, publishWorkspaceEvent } from "../db/events.js";
import { updateMetadataAndNotify } from "../db/queries/metadata.js";
import { insertStats } from "../db/queries/stats.js";
import { updateWorkspacesLastUsed } from "../db/queries/workspaces.js";
import type { Logger } from "../log.js";
import { emptyDerpMapSource, fileDerpMapSource } from "../tailnet/derp-map-source.js";
import { Coordinator } from "../tailnet/coordinator.js";
import { ResumeTokens } from "../tailnet/resume-token.js";
import { tailnetService } from "../tailnet/tailnet-service.js";
import { AgentServer } from "./agent-server.js";
import { ServerMetrics, type BatcherGauges } from "./metrics.js";
import { observedPubsub } from "./observed-pubsub.js";
import { agentServerStore } from "./agent-store.js";

/** How often StreamDERPMaps looks for a changed map (agent-api.md §3.2). */
const DERP_MAP_POLL_MS = 5_000;

/**
 * Wires a complete agentgate server on an open, migrated database: the services, the store,
 * the events, a fresh replica id. `serve` and the tests start servers through this alone.
 */
export async function startAgentgate(config: ServerConfig, db: Database, logger: Logger): Promise<AgentServer> {
  const replicaId = randomUUID();
  const banners = await readBanners(config.bannersFile);
  const derpMaps = config.derpMapFile
    ? fileDerpMapSource(config.derpMapFile, (err) => logger.warn({ err }, "DERP map file unreadable; keeping the last good map"))
    : emptyDerpMapSource();
  // A bad --derp-map fails the start, not the first agent.
  await derpMaps.current();
  const metrics = new ServerMetrics();
  const pubsub = observedPubsub(db.pubsub, () => metrics.pubsubErrors.inc());
  const stats = new ServerStatsSampler({ source: metricsStatsSource(metrics), replicaId, logger });
  const statsBatcher = createStatsBatcher((rows) => insertStats(db, rows), logger);
  const metadataBatcher = createMetadataBatcher(
    async (updates) => void (await updateMetadataAndNotify(db, updates, AGENT_METADATA_BATCH_CHANNEL)),
    config.metadataFlushIntervalMs,
    logger,
  );
  const resumeTokens = ResumeTokens.fromDatabase(db);
  const coordinator = await Coordinator.start({ db, pubsub, replicaId, logger: logger.child({ component: "tailnet" }) });
  const usageTracker = new UsageTracker({
    write: (ids, at) => updateWorkspacesLastUsed(db, ids, at),
    flushIntervalMs: config.usageFlushIntervalMs,
    now: () => new Date(),
    logger,
  });
  // A server that fails to listen must not leave the coordinator heartbeating.
  const server = await AgentServer.start({
    config,
    logger,
    replicaId,
    metrics,
    store: agentServerStore(db, replicaId),
    routes(router) {
      router.service(
        Agent,
        agentService({
          db,
          pubsub,
          logger,
          banners,
          derpMaps,
          manifest: {
            accessUrl: config.accessUrl,
            appHostname: config.appHostname,
            blockDirectConnections: config.blockDirectConnections,
            derpForceWebsockets: config.derpForceWebsockets,
          },
          statsReportIntervalMs: config.agentStatsIntervalMs,
          statsBatcher,
          metadataBatcher,
          usageTracker,
        }),
      );
      router.service(
        Tailnet,
        tailnetService({ derpMaps, derpMapPollMs: DERP_MAP_POLL_MS, coordination: { coordinator, resumeTokens, db } }),
      );
      router.service(ControlService, controlService({ db, logger, config, stats }));
    },
    publishConnectionUpdate: (identity) =>
      void publishWorkspaceEvent(
        pubsub,
        identity.ownerId,
        { kind: "agt_connection_update", workspace_id: identity.workspaceId, agent_id: identity.agentId },
        logger,
      ),
    // Final flushes run after the tunnels drained, so the last reports are in them.
    closeOnShutdown: [coordinator, statsBatcher, metadataBatcher, usageTracker, stats],
  }).catch(async (err: unknown) => {
    await coordinator.close();
    throw err;
  });
  server.metrics.watchBatcher(batcherGauges("stats", statsBatcher));
  server.metrics.watchBatcher(batcherGauges("metadata", metadataBatcher));
  server.metrics.watchBatcher(usageTracker);
  return server;
}

/** A batcher's counters as the gauges /metrics reads at scrape time. */
function batcherGauges(name: string, batcher: Pick<Batcher<never>, "counters">): BatcherGauges {
  return {
    name,
    get queued() {
      return batcher.counters().queued;
    },
    get dropped() {
      return batcher.counters().dropped;
    },
    get flushErrors() {
      return batcher.counters().flushErrors;
    },
  };
}

async function readBanners(file: string | undefined): Promise<BannerSettings> {
  if (!file) return {};
  try {
    return JSON.parse(await readFile(file, "utf8")) as BannerSettings;
  } catch (err) {
    throw new Error(`--banners ${file}: ${(err as Error).message}`);
  }
}
