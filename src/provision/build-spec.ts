import type { Queryable } from "../db/database.js";
import { listAgentsByBuildId, type WorkspaceAgent } from "../db/queries/agents.js";
import { listAppsByAgentId } from "../db/queries/apps.js";
import { listDevcontainersByAgentId } from "../db/queries/devcontainers.js";
import { listLogSources } from "../db/queries/log-sources.js";
import { listMetadata } from "../db/queries/metadata.js";
import { getMemoryMonitor, listVolumeMonitors } from "../db/queries/resource-monitors.js";
import { listScriptsByAgentId } from "../db/queries/scripts.js";
import type { AgentSpec, AppSpec, WorkspaceSpec } from "./spec.js";

/**
 * The spec a build was made from, read back from what provisioning wrote: its agents in spec
 * order with their apps, scripts, metadata, devcontainers and monitors. Agents a workspace made
 * itself (sub-agents) are not part of it. Scripts and devcontainers come back in creation order;
 * those created together are ordered by id.
 */
export async function readBuildSpec(q: Queryable, buildId: string): Promise<WorkspaceSpec> {
  const agents = (await listAgentsByBuildId(q, buildId)).filter((a) => a.parentId === null).sort((a, b) => a.displayOrder - b.displayOrder);
  return { agents: await Promise.all(agents.map((a) => agentSpec(q, a))) };
}

async function agentSpec(q: Queryable, a: WorkspaceAgent): Promise<AgentSpec> {
  const [apps, scripts, sources, metadata, devcontainers, memory, volumes] = await Promise.all([
    listAppsByAgentId(q, a.id), listScriptsByAgentId(q, a.id), listLogSources(q, a.id), listMetadata(q, a.id),
    listDevcontainersByAgentId(q, a.id), getMemoryMonitor(q, a.id), listVolumeMonitors(q, a.id),
  ]);
  const icons = new Map(sources.map((s) => [s.id, s.icon]));
  return {
    name: a.name,
    os: a.operatingSystem,
    architecture: a.architecture,
    directory: a.directory,
    env: a.environmentVariables ?? {},
    connection_timeout_seconds: a.connectionTimeoutSeconds,
    troubleshooting_url: a.troubleshootingUrl,
    motd_file: a.motdFile,
    display_apps: a.displayApps,
    apps: apps.map((app) => {
      const spec: AppSpec = {
        slug: app.slug, display_name: app.displayName, icon: app.icon, external: app.external, subdomain: app.subdomain,
        hidden: app.hidden, sharing_level: app.sharingLevel, open_in: app.openIn, tooltip: app.tooltip,
      };
      if (app.url !== null) spec.url = app.url;
      if (app.command !== null) spec.command = app.command;
      if (app.displayGroup !== null) spec.display_group = app.displayGroup;
      // Provisioning stores "no health check" as an empty URL.
      if (app.healthcheckUrl !== "") spec.healthcheck = { url: app.healthcheckUrl, interval_seconds: app.healthcheckInterval, threshold: app.healthcheckThreshold };
      return spec;
    }),
    scripts: scripts.map((s) => ({
      display_name: s.displayName, icon: icons.get(s.logSourceId) ?? "", script: s.script, cron: s.cron, log_path: s.logPath,
      run_on_start: s.runOnStart, run_on_stop: s.runOnStop, start_blocks_login: s.startBlocksLogin, timeout_seconds: s.timeoutSeconds,
    })),
    metadata: metadata.map((m) => ({ key: m.key, display_name: m.displayName, script: m.script, interval_seconds: m.interval, timeout_seconds: m.timeout })),
    devcontainers: devcontainers.map((d) => ({ workspace_folder: d.workspaceFolder, config_path: d.configPath, name: d.name })),
    resource_monitors: {
      ...(memory ? { memory: { enabled: memory.enabled, threshold: memory.threshold } } : {}),
      volumes: volumes.map((v) => ({ path: v.path, enabled: v.enabled, threshold: v.threshold })),
    },
  };
}
