import type { ServiceImpl } from "@connectrpc/connect";
import type { Agent } from "../../gen/coder/agent/v2/agent_pb.js";
import type { Queryable } from "../db/database.js";
import { publishWorkspaceEvent } from "../db/events.js";
import type { Pubsub } from "../db/pubsub.js";
import * as q from "../db/queries/index.js";
import { EXTERNAL_LOG_SOURCE } from "../db/queries/log-sources.js";
import type { MetadataUpdate } from "../db/queries/metadata.js";
import type { AgentStatsRow } from "../db/queries/stats.js";
import type { Logger } from "../log.js";
import type { DerpMapSource } from "../tailnet/derp-map-source.js";
import { appStatusApi } from "./app-status.js";
import { appsApi } from "./apps.js";
import { bannersApi, type BannerSettings } from "./banners.js";
import { boundaryLogsApi } from "./boundary-logs.js";
import { callerLoader } from "./caller.js";
import { connectionsApi } from "./connections.js";
import { lifecycleApi } from "./lifecycle.js";
import { logsApi } from "./logs.js";
import { manifestApi, type ManifestSettings } from "./manifest.js";
import { metadataApi } from "./metadata.js";
import type { Clock, PublishWorkspaceEventFn } from "./publish.js";
import { resourcesApi } from "./resources.js";
import { scriptsApi } from "./scripts.js";
import { startupApi } from "./startup.js";
import { statsApi } from "./stats.js";
import { subAgentsApi } from "./subagents.js";

/** What the Agent service is built from; api.ts hands each RPC group only the part it needs. */
export interface AgentApiDeps {
  db: Queryable;
  pubsub: Pubsub;
  logger: Logger;
  /** Default: the wall clock. */
  now?: Clock;
  banners: BannerSettings;
  derpMaps: DerpMapSource;
  manifest: ManifestSettings;
  /** `--agent-stats-interval`. */
  statsReportIntervalMs: number;
  statsBatcher: { add(row: AgentStatsRow): boolean };
  metadataBatcher: { add(update: MetadataUpdate): boolean };
  usageTracker: { markUsed(workspaceId: string): void };
}

/**
 * The `coder.agent.v2.Agent` service, composed from one module per RPC group. PushContextState is
 * left out on purpose: the router answers it Unimplemented, as Coder's stub does (§2.15).
 */
export function agentService(deps: AgentApiDeps): Partial<ServiceImpl<typeof Agent>> {
  const { db, logger } = deps;
  const now = deps.now ?? (() => new Date());
  const loadCaller = callerLoader((id) => q.agents.getAgentById(db, id));
  const publishEvent: PublishWorkspaceEventFn = async (ownerId, event) => {
    await publishWorkspaceEvent(deps.pubsub, ownerId, event, logger);
  };

  const banners = bannersApi(deps.banners);
  const manifest = manifestApi({
    loadCaller,
    listApps: (id) => q.apps.listAppsByAgentId(db, id),
    listScripts: (id) => q.scripts.listScriptsByAgentId(db, id),
    listMetadata: (id) => q.metadata.listMetadata(db, id),
    listDevcontainers: (id) => q.devcontainers.listDevcontainersByAgentId(db, id),
    getWorkspace: (id) => q.workspaces.getWorkspaceById(db, id),
    getUser: (id) => q.users.getUserById(db, id),
    derpMap: () => deps.derpMaps.current(),
    settings: deps.manifest,
  });
  const stats = statsApi({
    loadCaller,
    enqueueStats: (row) => deps.statsBatcher.add(row),
    markWorkspaceUsed: (id) => deps.usageTracker.markUsed(id),
    publishWorkspaceEvent: publishEvent,
    now,
    reportIntervalMs: deps.statsReportIntervalMs,
  });
  const lifecycle = lifecycleApi({ loadCaller, updateLifecycle: (p) => q.agents.updateAgentLifecycle(db, p), publishWorkspaceEvent: publishEvent, now });
  const apps = appsApi({
    loadCaller,
    listApps: (id) => q.apps.listAppsByAgentId(db, id),
    updateAppHealths: (u) => q.apps.updateAppHealths(db, u),
    publishWorkspaceEvent: publishEvent,
  });
  const startup = startupApi({ loadCaller, updateStartup: (p) => q.agents.updateAgentStartup(db, p) });
  const metadata = metadataApi({ loadCaller, enqueueMetadata: (u) => deps.metadataBatcher.add(u), now, logger });
  const logs = logsApi({
    loadCaller,
    ensureExternalLogSource: (agentId, createdAt) => q.logSources.insertLogSources(db, { agentId, createdAt, sources: [EXTERNAL_LOG_SOURCE] }),
    insertLogs: (p) => q.logs.insertLogBatch(db, p),
    setLogsOverflowed: (id) => q.logs.setLogsOverflowed(db, id, true),
    publishWorkspaceEvent: publishEvent,
    now,
    logger,
  });
  const scripts = scriptsApi({ loadCaller, insertScriptTiming: (t) => q.scriptTimings.insertScriptTiming(db, t) });
  const resources = resourcesApi({
    loadCaller,
    getMemoryMonitor: (id) => q.resourceMonitors.getMemoryMonitor(db, id),
    listVolumeMonitors: (id) => q.resourceMonitors.listVolumeMonitors(db, id),
    updateMemoryMonitor: (p) => q.resourceMonitors.updateMemoryMonitor(db, p),
    updateVolumeMonitor: (p) => q.resourceMonitors.updateVolumeMonitor(db, p),
    publishWorkspaceEvent: publishEvent,
    now,
  });
  const connections = connectionsApi({ loadCaller, upsertConnectionLog: (e) => q.connectionLogs.upsertConnectionLog(db, e), now });
  const subAgents = subAgentsApi({
    loadCaller,
    getAgent: (id) => q.agents.getAgentById(db, id),
    insertAgent: (p) => q.agents.insertAgent(db, p),
    upsertApp: (p) => q.apps.upsertApp(db, p),
    updateSubAgentDisplay: (p) => q.agents.updateSubAgentDisplay(db, p),
    listSubAgents: (id) => q.agents.listSubAgents(db, id),
    softDeleteSubAgent: (p) => q.agents.softDeleteSubAgent(db, p),
    now,
  });
  const appStatus = appStatusApi({
    loadCaller,
    getAppBySlug: (agentId, slug) => q.apps.getAppBySlug(db, agentId, slug),
    insertAppStatus: (s) => q.appStatuses.insertAppStatus(db, s),
    publishWorkspaceEvent: publishEvent,
    now,
  });
  const boundary = boundaryLogsApi({ loadCaller, logger });

  return {
    getManifest: manifest.getManifest,
    getServiceBanner: async (_req, ctx) => (await loadCaller(ctx), banners.getServiceBanner()),
    getAnnouncementBanners: async (_req, ctx) => (await loadCaller(ctx), banners.getAnnouncementBanners()),
    updateStats: stats.updateStats,
    updateLifecycle: lifecycle.updateLifecycle,
    batchUpdateAppHealths: apps.batchUpdateAppHealths,
    updateStartup: startup.updateStartup,
    batchUpdateMetadata: metadata.batchUpdateMetadata,
    batchCreateLogs: logs.batchCreateLogs,
    scriptCompleted: scripts.scriptCompleted,
    getResourcesMonitoringConfiguration: resources.getResourcesMonitoringConfiguration,
    pushResourcesMonitoringUsage: resources.pushResourcesMonitoringUsage,
    reportConnection: connections.reportConnection,
    createSubAgent: subAgents.createSubAgent,
    deleteSubAgent: subAgents.deleteSubAgent,
    listSubAgents: subAgents.listSubAgents,
    updateAppStatus: appStatus.updateAppStatus,
    reportBoundaryLogs: boundary.reportBoundaryLogs,
  };
}
