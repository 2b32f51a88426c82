import { randomUUID } from "node:crypto";
import { Agent } from "../../gen/coder/agent/v2/agent_pb.js";
import { Tailnet } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { ControlService } from "../../gen/agentgate/control/v1/control_pb.js";
import { controlService } from "../control/control-service.js";
import { metricsStatsSource, ServerStatsSampler } from "../control/server-stats.js";
import { agentService } from "../agentapi/api.js";
import { rpcRegistration } from "../rpc/index.js";
import { readBannersFile } from "../agentapi/banners.js";
import { createMetadataBatcher, createStatsBatcher, createUsageBatcher } from "../agentapi/batchers.js";
import type { ServerConfig } from "../config.js";
import type { Database } from "../db/database.js";
import { publishWorkspaceEvent } from "../db/events.js";
import { updateMetadataAndNotify } from "../db/queries/metadata.js";
import { insertStats } from "../db/queries/stats.js";
import { updateWorkspacesLastUsed } from "../db/queries/workspaces.js";
import type { Logger } from "../log.js";
import { Coordinator } from "../tailnet/coordinator.js";
import { emptyDerpMapSource, fileDerpMapSource } from "../tailnet/derp-map-source.js";
import { ResumeTokens } from "../tailnet/resume-token.js";
import { tailnetService } from "../tailnet/tailnet-service.js";
import { AgentServer } from "./agent-server.js";
import { agentServerStore } from "./agent-store.js";
import { IdentityWatch } from "./identity-watch.js";
import { ServerMetrics } from "./metrics.js";
import { observedPubsub } from "./observed-pubsub.js";

/** How often StreamDERPMaps looks for a changed map, as coderd does. */
const DERP_MAP_POLL_MS = 5_000;

/**
 * Wires a complete agentgate server on an open, migrated database: the services, the store,
 * the events, a fresh replica id. `serve` and the tests start servers through this alone.
 */
export async function startAgentgate(config: ServerConfig, db: Database, logger: Logger): Promise<AgentServer> {
  const replicaId = randomUUID();
  const banners = config.bannersFile ? await readBannersFile(config.bannersFile) : {};
  const derpMaps = config.derpMapFile
    ? fileDerpMapSource(config.derpMapFile, (err) => logger.warn({ err }, "DERP map file unreadable; keeping the last good map"))
    : emptyDerpMapSource();
  // A bad --derp-map fails the start, not the first agent.
  await derpMaps.current();
  const metrics = new ServerMetrics();
  const pubsub = observedPubsub(db.pubsub, () => metrics.pubsubErrors.inc());
  const stats = new ServerStatsSampler({ source: metricsStatsSource(metrics), replicaId, logger });
  const clock = () => new Date();
  const batchers = {
    stats: createStatsBatcher((rows) => insertStats(db, rows), logger),
    metadata: createMetadataBatcher(async (updates) => void (await updateMetadataAndNotify(db, updates)), config.metadataFlushIntervalMs, logger),
    usage: createUsageBatcher((ids, at) => updateWorkspacesLastUsed(db, ids, at), config.usageFlushIntervalMs, clock, logger),
  };
  for (const batcher of Object.values(batchers)) metrics.watchBatcher(batcher);
  const resumeTokens = ResumeTokens.fromDatabase(db);
  const watch = await IdentityWatch.start({
    db,
    background: db.background,
    pubsub,
    sweepIntervalMs: config.agentUpdateIntervalMs,
    logger: logger.child({ component: "identity" }),
  });
  const coordinator = await Coordinator.start({
    db,
    pubsub,
    replicaId,
    logger: logger.child({ component: "tailnet" }),
    heartbeatIntervalMs: config.tailnetHeartbeatIntervalMs,
    replicaTimeoutMs: config.tailnetReplicaTimeoutMs,
    fullRefreshIntervalMs: config.tailnetFullRefreshIntervalMs,
  }).catch((err: unknown) => {
    watch.close();
    throw err;
  });
  metrics.watchCoordinator(() => coordinator.counters());
  // A server that fails to listen must not leave the coordinator heartbeating.
  return AgentServer.start({
    config,
    logger,
    replicaId,
    metrics,
    watch,
    store: agentServerStore(db, replicaId),
    clientAdmission: { db, adminToken: config.adminToken, resumeTokens },
    agentServices: [
      rpcRegistration(Agent, agentService({ db, pubsub, logger, clock, config, banners, derpMaps, batchers, identities: watch })),
      rpcRegistration(Tailnet, tailnetService({ derpMaps, derpMapPollMs: DERP_MAP_POLL_MS, coordination: { coordinator, resumeTokens, db } })),
    ],
    routes(router) {
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
    closeOnShutdown: [coordinator, ...Object.values(batchers), stats, { close: async () => watch.close() }],
  }).catch(async (err: unknown) => {
    watch.close();
    await coordinator.close();
    throw err;
  });
}
