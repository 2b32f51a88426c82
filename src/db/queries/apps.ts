import type { Queryable } from "../database.js";
import type { AppHealth, AppOpenIn, AppSharingLevel } from "../enums.js";
import { selectList, type ColumnList } from "./columns.js";

/** A `workspace_apps` row. */
export interface WorkspaceApp {
  id: string;
  createdAt: Date;
  agentId: string;
  slug: string;
  displayName: string;
  icon: string;
  command: string | null;
  url: string | null;
  external: boolean;
  subdomain: boolean;
  sharingLevel: AppSharingLevel;
  healthcheckUrl: string;
  /** Seconds. */
  healthcheckInterval: number;
  healthcheckThreshold: number;
  health: AppHealth;
  displayOrder: number;
  hidden: boolean;
  openIn: AppOpenIn;
  displayGroup: string | null;
  tooltip: string;
}

export const APP_COLUMNS: ColumnList = [
  ["id", "id"], ["created_at", "createdAt"], ["agent_id", "agentId"], ["slug", "slug"], ["display_name", "displayName"],
  ["icon", "icon"], ["command", "command"], ["url", "url"], ["external", "external"], ["subdomain", "subdomain"],
  ["sharing_level", "sharingLevel"], ["healthcheck_url", "healthcheckUrl"], ["healthcheck_interval", "healthcheckInterval"],
  ["healthcheck_threshold", "healthcheckThreshold"], ["health", "health"], ["display_order", "displayOrder"],
  ["hidden", "hidden"], ["open_in", "openIn"], ["display_group", "displayGroup"], ["tooltip", "tooltip"],
];

/** What a provisioner (or CreateSubAgent) sets on an app; the rest take column defaults. */
export type InsertAppParams = Pick<WorkspaceApp, "id" | "agentId" | "slug"> &
  Partial<Omit<WorkspaceApp, "id" | "agentId" | "slug" | "createdAt">> & { now: Date };

/**
 * Inserts an app, or replaces the one with the same (agent, slug): CreateSubAgent upserts. The
 * initial health is `initializing` when a health check URL is set, else `disabled`, as coderd sets it.
 */
export async function upsertApp(q: Queryable, p: InsertAppParams): Promise<WorkspaceApp> {
  const health = p.health ?? (p.healthcheckUrl ? "initializing" : "disabled");
  const { rows } = await q.query<WorkspaceApp>(
    `INSERT INTO workspace_apps AS w (id, created_at, agent_id, slug, display_name, icon, command, url, external, subdomain,
       sharing_level, healthcheck_url, healthcheck_interval, healthcheck_threshold, health, display_order, hidden, open_in,
       display_group, tooltip)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
     ON CONFLICT (agent_id, slug) DO UPDATE SET display_name = EXCLUDED.display_name, icon = EXCLUDED.icon,
       command = EXCLUDED.command, url = EXCLUDED.url, external = EXCLUDED.external, subdomain = EXCLUDED.subdomain,
       sharing_level = EXCLUDED.sharing_level, healthcheck_url = EXCLUDED.healthcheck_url,
       healthcheck_interval = EXCLUDED.healthcheck_interval, healthcheck_threshold = EXCLUDED.healthcheck_threshold,
       health = EXCLUDED.health, display_order = EXCLUDED.display_order, hidden = EXCLUDED.hidden,
       open_in = EXCLUDED.open_in, display_group = EXCLUDED.display_group, tooltip = EXCLUDED.tooltip
     RETURNING ${selectList("w", APP_COLUMNS)}`,
    [
      p.id, p.now, p.agentId, p.slug, p.displayName ?? "", p.icon ?? "", p.command ?? null, p.url ?? null,
      p.external ?? false, p.subdomain ?? false, p.sharingLevel ?? "owner", p.healthcheckUrl ?? "",
      p.healthcheckInterval ?? 0, p.healthcheckThreshold ?? 0, health, p.displayOrder ?? 0, p.hidden ?? false,
      p.openIn ?? "slim-window", p.displayGroup ?? null, p.tooltip ?? "",
    ],
  );
  return rows[0]!;
}

/** The apps of an agent (no rows is fine). */
export async function listAppsByAgentId(q: Queryable, agentId: string): Promise<WorkspaceApp[]> {
  const { rows } = await q.query<WorkspaceApp>(
    `SELECT ${selectList("w", APP_COLUMNS)} FROM workspace_apps w WHERE w.agent_id = $1 ORDER BY w.display_order, w.slug`,
    [agentId],
  );
  return rows;
}

/** The app with `slug` on an agent. */
export async function getAppBySlug(q: Queryable, agentId: string, slug: string): Promise<WorkspaceApp | undefined> {
  const { rows } = await q.query<WorkspaceApp>(`SELECT ${selectList("w", APP_COLUMNS)} FROM workspace_apps w WHERE w.agent_id = $1 AND w.slug = $2`, [agentId, slug]);
  return rows[0];
}

/** Sets the health of several apps in one statement (BatchUpdateAppHealths writes only changed ones). */
export async function updateAppHealths(q: Queryable, updates: { id: string; health: AppHealth }[]): Promise<void> {
  if (updates.length === 0) return;
  await q.query(
    `UPDATE workspace_apps a SET health = u.health
     FROM unnest($1::uuid[], $2::text[]::workspace_app_health[]) AS u(id, health) WHERE a.id = u.id`,
    [updates.map((u) => u.id), updates.map((u) => u.health)],
  );
}
