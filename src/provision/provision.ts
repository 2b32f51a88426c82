import { randomUUID } from "node:crypto";
import type { Database, Queryable } from "../db/database.js";
import { isUniqueViolation } from "../db/errors.js";
import { insertAgent } from "../db/queries/agents.js";
import { upsertApp } from "../db/queries/apps.js";
import { getLatestBuild, insertNextBuild } from "../db/queries/builds.js";
import { insertDevcontainers } from "../db/queries/devcontainers.js";
import { insertLogSources } from "../db/queries/log-sources.js";
import { insertMetadataDescriptions } from "../db/queries/metadata.js";
import { insertMemoryMonitor, insertVolumeMonitor } from "../db/queries/resource-monitors.js";
import { insertResource } from "../db/queries/resources.js";
import { insertScripts } from "../db/queries/scripts.js";
import { getUserById, getUserByUsername, insertUser } from "../db/queries/users.js";
import {
  getWorkspaceById,
  getWorkspaceByOwnerAndName,
  insertWorkspace,
  softDeleteWorkspace,
  type Workspace,
} from "../db/queries/workspaces.js";
import { isUuid } from "../uuid.js";
import { readBuildSpec } from "./build-spec.js";
import { MAX_USER_OR_WORKSPACE_NAME, nameProblem } from "./names.js";
import type { AgentSpec, WorkspaceSpec } from "./spec.js";

/** Why a provisioning request failed: a bad request, an unknown workspace, or a name already taken. */
export type ProvisionErrorReason = "invalid" | "not_found" | "already_exists";

/** A provisioning request that can't be carried out (unknown workspace, name taken, …); nothing was written. */
export class ProvisionError extends Error {
  override name = "ProvisionError";
  constructor(
    message: string,
    readonly reason: ProvisionErrorReason = "invalid",
  ) {
    super(message);
  }
}

/** What create and build return; also the CLI's `--json` output. */
export interface ProvisionResult {
  workspace_id: string;
  build_id: string;
  build_number: number;
  agents: { id: string; name: string; token: string }[];
}

/** The one resource every build gets; agentgate has no Terraform state to describe more. */
const RESOURCE = { type: "agentgate_workspace", name: "workspace" } as const;

/**
 * Creates the owner if missing, the workspace, and build 1 with one resource and the spec's agents,
 * in one transaction.
 */
export async function createWorkspace(
  db: Database,
  p: { owner: string; name: string; spec: WorkspaceSpec; now?: Date },
): Promise<ProvisionResult> {
  checkName("owner", p.owner);
  checkName("workspace name", p.name);
  const now = p.now ?? new Date();
  try {
    return await db.transaction(async (tx) => {
      const owner = (await getUserByUsername(tx, p.owner)) ?? (await insertUser(tx, { id: randomUUID(), username: p.owner, now }));
      if (await getWorkspaceByOwnerAndName(tx, owner.username, p.name)) throw taken(p.owner, p.name);
      const workspace = await insertWorkspace(tx, { id: randomUUID(), ownerId: owner.id, name: p.name, now });
      return await insertBuild(tx, workspace, owner.id, p.spec, now);
    });
  } catch (err) {
    // Two creates racing past the existence check meet the unique index instead.
    if (isUniqueViolation(err, "workspaces_owner_id_lower_idx")) throw taken(p.owner, p.name);
    throw err;
  }
}

/**
 * Makes the next build of a workspace with new agents and tokens; the older build's agents become
 * outdated. Without a spec, the latest build's spec is built again, as a template rebuild does.
 */
export async function buildWorkspace(
  db: Database,
  p: { workspace: string; spec?: WorkspaceSpec | undefined; now?: Date },
): Promise<ProvisionResult> {
  const now = p.now ?? new Date();
  return db.transaction(async (tx) => {
    const workspace = await resolveWorkspace(tx, p.workspace);
    const spec = p.spec ?? (await readCurrentSpec(tx, workspace.id)).spec;
    return insertBuild(tx, workspace, workspace.ownerId, spec, now);
  });
}

/** A workspace's latest build and the spec it was made from. */
export interface CurrentSpec {
  workspaceId: string;
  /** The owner's username. */
  owner: string;
  workspaceName: string;
  buildNumber: number;
  spec: WorkspaceSpec;
}

/** The spec of a workspace's latest build (id or `owner/name`); `workspace show` prints it. */
export async function readCurrentSpec(q: Queryable, ref: string): Promise<CurrentSpec> {
  const workspace = await resolveWorkspace(q, ref);
  const [owner, build] = await Promise.all([getUserById(q, workspace.ownerId), getLatestBuild(q, workspace.id)]);
  // createWorkspace writes the owner, the workspace and build 1 in one transaction.
  if (owner === undefined || build === undefined) throw new Error(`workspace ${workspace.id} has no owner or no build`);
  return { workspaceId: workspace.id, owner: owner.username, workspaceName: workspace.name, buildNumber: build.buildNumber, spec: await readBuildSpec(q, build.id) };
}

/** Soft-deletes a workspace: its agents stop authenticating. */
export async function deleteWorkspace(db: Database, p: { workspace: string; now?: Date }): Promise<Workspace> {
  return db.transaction(async (tx) => {
    const workspace = await resolveWorkspace(tx, p.workspace);
    await softDeleteWorkspace(tx, workspace.id, p.now ?? new Date());
    return workspace;
  });
}

/** Finds a live workspace by id or `owner/name`; throws {@link ProvisionError} when there is none. */
export async function resolveWorkspace(q: Queryable, ref: string): Promise<Workspace> {
  let found: Workspace | undefined;
  if (isUuid(ref)) found = await getWorkspaceById(q, ref.toLowerCase());
  else {
    const parts = ref.split("/");
    if (parts.length !== 2 || !parts[0] || !parts[1]) throw new ProvisionError(`workspace "${ref}": want an id or owner/name`);
    found = await getWorkspaceByOwnerAndName(q, parts[0], parts[1]);
  }
  if (found === undefined) throw new ProvisionError(`workspace "${ref}" not found`, "not_found");
  return found;
}

async function insertBuild(tx: Queryable, workspace: Workspace, initiatorId: string, spec: WorkspaceSpec, now: Date): Promise<ProvisionResult> {
  if (spec.agents.length === 0) throw new ProvisionError("a build needs at least one agent");
  const build = await insertNextBuild(tx, {
    id: randomUUID(), workspaceId: workspace.id, jobId: randomUUID(), initiatorId, transition: "start", reason: "cli", now,
  });
  const resource = await insertResource(tx, { id: randomUUID(), jobId: build.jobId, transition: "start", ...RESOURCE, now });
  const agents: ProvisionResult["agents"] = [];
  for (const [i, agentSpec] of spec.agents.entries()) {
    const token = randomUUID();
    const id = await insertAgentFromSpec(tx, resource.id, agentSpec, token, i, now);
    agents.push({ id, name: agentSpec.name, token });
  }
  return { workspace_id: workspace.id, build_id: build.id, build_number: build.buildNumber, agents };
}

async function insertAgentFromSpec(tx: Queryable, resourceId: string, a: AgentSpec, token: string, order: number, now: Date): Promise<string> {
  const agent = await insertAgent(tx, {
    id: randomUUID(), resourceId, name: a.name, authToken: token, architecture: a.architecture, operatingSystem: a.os,
    directory: a.directory, environmentVariables: a.env, connectionTimeoutSeconds: a.connection_timeout_seconds,
    troubleshootingUrl: a.troubleshooting_url, motdFile: a.motd_file, displayApps: a.display_apps, displayOrder: order, now,
  });
  for (const [i, app] of a.apps.entries()) {
    await upsertApp(tx, {
      id: randomUUID(), agentId: agent.id, slug: app.slug, displayName: app.display_name, icon: app.icon,
      url: app.url ?? null, command: app.command ?? null, external: app.external, subdomain: app.subdomain,
      hidden: app.hidden, sharingLevel: app.sharing_level, openIn: app.open_in, displayGroup: app.display_group ?? null,
      tooltip: app.tooltip, healthcheckUrl: app.healthcheck?.url ?? "", healthcheckInterval: app.healthcheck?.interval_seconds ?? 0,
      healthcheckThreshold: app.healthcheck?.threshold ?? 0, displayOrder: i, now,
    });
  }
  // Each script logs under its own source, as Coder's provisioner does.
  const scripts = a.scripts.map((s) => ({ spec: s, id: randomUUID(), logSourceId: randomUUID() }));
  await insertLogSources(tx, { agentId: agent.id, createdAt: now, sources: scripts.map((s) => ({ id: s.logSourceId, displayName: s.spec.display_name, icon: s.spec.icon })) });
  await insertScripts(tx, scripts.map(({ spec: s, id, logSourceId }) => ({
    id, workspaceAgentId: agent.id, logSourceId, logPath: s.log_path, createdAt: now, script: s.script, cron: s.cron,
    startBlocksLogin: s.start_blocks_login, runOnStart: s.run_on_start, runOnStop: s.run_on_stop, timeoutSeconds: s.timeout_seconds,
    displayName: s.display_name,
  })));
  await insertMetadataDescriptions(tx, agent.id, a.metadata.map((m) => ({
    key: m.key, displayName: m.display_name, script: m.script, intervalSeconds: m.interval_seconds, timeoutSeconds: m.timeout_seconds,
  })));
  await insertDevcontainers(tx, a.devcontainers.map((d) => ({
    id: randomUUID(), workspaceAgentId: agent.id, createdAt: now, workspaceFolder: d.workspace_folder, configPath: d.config_path, name: d.name, subagentId: null,
  })));
  const { memory, volumes } = a.resource_monitors;
  if (memory) await insertMemoryMonitor(tx, { agentId: agent.id, ...memory, now });
  for (const v of volumes) await insertVolumeMonitor(tx, { agentId: agent.id, ...v, now });
  return agent.id;
}

function checkName(what: string, name: string): void {
  const problem = nameProblem(name, MAX_USER_OR_WORKSPACE_NAME);
  if (problem !== undefined) throw new ProvisionError(`${what} ${problem}`);
}

function taken(owner: string, name: string): ProvisionError {
  return new ProvisionError(`workspace ${owner}/${name} already exists`, "already_exists");
}
