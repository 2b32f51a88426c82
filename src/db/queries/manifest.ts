import type { Queryable } from "../database.js";
import { APP_COLUMNS, type WorkspaceApp } from "./apps.js";
import { selectList } from "./columns.js";
import type { Devcontainer } from "./devcontainers.js";
import type { AgentMetadata } from "./metadata.js";
import { SCRIPT_SELECT, type AgentScript } from "./scripts.js";

/** A row as it comes out of `json_agg`: timestamps stay ISO 8601 text. */
export type JsonRow<T> = { [K in keyof T]: T[K] extends Date ? string : T[K] extends Date | null ? string | null : T[K] };

/** Everything GetManifest answers from, for one agent. */
export interface ManifestRows {
  agentName: string;
  environmentVariables: Record<string, string> | null;
  directory: string;
  motdFile: string;
  parentId: string | null;
  workspaceId: string;
  workspaceName: string;
  ownerUsername: string;
  /** By display order, then slug. */
  apps: JsonRow<WorkspaceApp>[];
  /** By creation, then id. */
  scripts: JsonRow<AgentScript>[];
  /** By display order, then key. */
  metadata: JsonRow<AgentMetadata>[];
  /** By creation, then id. */
  devcontainers: JsonRow<Devcontainer>[];
}

/**
 * What GetManifest needs, for many agents in one statement: each agent, its workspace and owner,
 * and its apps, scripts, metadata and devcontainers aggregated as JSON; answered in the order
 * asked. One statement for many manifests keeps a reconnect storm of a whole fleet to a few
 * statements per round trip. Undefined for an agent or workspace that is deleted.
 */
export async function getManifestRowsOf(q: Queryable, agentIds: readonly string[]): Promise<Array<ManifestRows | undefined>> {
  const { rows } = await q.query<ManifestRows & { agentId: string }>(
    `SELECT a.id AS "agentId", a.name AS "agentName", a.environment_variables AS "environmentVariables", a.directory, a.motd_file AS "motdFile",
            a.parent_id AS "parentId", w.id AS "workspaceId", w.name AS "workspaceName", u.username AS "ownerUsername",
            (SELECT coalesce(json_agg(x ORDER BY x."displayOrder", x.slug), '[]')
               FROM (SELECT ${selectList("p", APP_COLUMNS)} FROM workspace_apps p WHERE p.agent_id = a.id) x) AS apps,
            (SELECT coalesce(json_agg(x ORDER BY x."createdAt", x.id), '[]')
               FROM (SELECT ${SCRIPT_SELECT} FROM workspace_agent_scripts WHERE workspace_agent_id = a.id) x) AS scripts,
            (SELECT coalesce(json_agg(x ORDER BY x."displayOrder", x.key), '[]')
               FROM (SELECT d.workspace_agent_id AS "workspaceAgentId", d.display_name AS "displayName", d.key, d.script,
                            coalesce(v.value, '') AS value, coalesce(v.error, '') AS error, d.timeout, d.interval,
                            coalesce(v.collected_at, '0001-01-01 00:00:00+00') AS "collectedAt", d.display_order AS "displayOrder"
                     FROM workspace_agent_metadata_descriptions d
                     LEFT JOIN workspace_agent_metadata v ON v.workspace_agent_id = d.workspace_agent_id AND v.key = d.key
                     WHERE d.workspace_agent_id = a.id) x) AS metadata,
            (SELECT coalesce(json_agg(x ORDER BY x."createdAt", x.id), '[]')
               FROM (SELECT id, workspace_agent_id AS "workspaceAgentId", created_at AS "createdAt", workspace_folder AS "workspaceFolder",
                            config_path AS "configPath", name, subagent_id AS "subagentId"
                     FROM workspace_agent_devcontainers WHERE workspace_agent_id = a.id) x) AS devcontainers
     FROM workspace_agents a
     JOIN workspace_resources r ON r.id = a.resource_id
     JOIN workspace_builds b ON b.job_id = r.job_id
     JOIN workspaces w ON w.id = b.workspace_id
     JOIN users u ON u.id = w.owner_id
     WHERE a.id = ANY($1::uuid[]) AND NOT a.deleted AND NOT w.deleted`,
    [agentIds],
  );
  const byId = new Map<string, ManifestRows>();
  for (const { agentId, ...row } of rows) byId.set(agentId, row);
  return agentIds.map((id) => byId.get(id));
}
