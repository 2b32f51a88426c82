import { timestampDate } from "@bufbuild/protobuf/wkt";
import {
  AgentStatus,
  AppHealth,
  LifecycleState,
  LogLevel,
  type AgentSummary,
  type GetWorkspaceAgentsResponse,
} from "../../gen/agentgate/control/v1/control_pb.js";
import { inactiveTimeoutMs } from "../config.js";
import { wholeNumber } from "../config/flag-kinds.js";
import { flag } from "../config/flag.js";
import { trackingFlags } from "../config/server-flags.js";
import { UsageError } from "../config/usage-error.js";
import { DEFAULT_LOG_LIMIT, MAX_LOG_LIMIT, readWorkspaceAgents } from "../control/workspace-agents.js";
import { listAgentOverviews } from "../db/queries/agent-overviews.js";
import { agentStatus } from "../status/agent-status.js";
import { defineCommand } from "./command-spec.js";
import { controlClientFor, controlFlags, type ControlClient } from "./control-client.js";
import { withDatabase, type DatabaseLocation } from "./database-options.js";
import { jsonFlag } from "./json-flag.js";
import { table } from "./table.js";

const JSON_SHAPES = `--json without WORKSPACE: an array of
  {"workspace_id", "workspace": "owner/name", "agent_id", "agent", "build_number", "status",
   "lifecycle_state", "last_connected_at": ISO time or null}
--json with WORKSPACE: one object
  {"workspace_id", "workspace": "owner/name", "build_number",
   "agents": [{...the fields above,
     "metadata": [{"key", "display_name", "value", "error", "collected_at": ISO time or null}],
     "apps": [{"slug", "display_name", "url": string or null, "health"}],
     "logs": [{"created_at", "level", "source", "output"}],   (oldest first)
     "logs_overflowed": bool}]}`;

/** One agent in `agentgate status --json`. */
export interface StatusLine {
  workspace_id: string;
  workspace: string;
  agent_id: string;
  agent: string;
  build_number: number;
  status: string;
  lifecycle_state: string;
  last_connected_at: string | null;
}

/** `agentgate status WORKSPACE --json`. */
export interface WorkspaceStatus {
  workspace_id: string;
  workspace: string;
  build_number: number;
  agents: AgentStatusDetail[];
}

/** One agent in {@link WorkspaceStatus}: its status line and what it reported. */
export interface AgentStatusDetail extends StatusLine {
  metadata: { key: string; display_name: string; value: string; error: string; collected_at: string | null }[];
  apps: { slug: string; display_name: string; url: string | null; health: string }[];
  logs: { created_at: string; level: string; source: string; output: string }[];
  logs_overflowed: boolean;
}

/** `agentgate status [WORKSPACE]`: agents with workspace, build number, status, lifecycle and last connection; one workspace's in detail. */
export const statusCommand = defineCommand({
  name: "status",
  summary: "list agents and their status, or one workspace's in detail",
  description: `Lists the agents of every workspace's latest build with their computed status. With WORKSPACE (an id or owner/name), shows that workspace's agents in detail: each agent's status line, its metadata items with their latest values, its apps with their health, and its last log lines. With --url, or while a server runs on the PGlite data folder, asks the server's control API (which computes statuses with its own intervals); otherwise reads the database, computing statuses with --agent-update-interval and --agent-inactive-timeout as serve would.`,
  args: [{ name: "WORKSPACE", help: "an id or owner/name", optional: true }],
  flags: {
    ...jsonFlag,
    logs: flag(wholeNumber(0, "want a number of lines"), { default: String(DEFAULT_LOG_LIMIT), help: `with WORKSPACE: the last N log lines of each agent, 0 to ${MAX_LOG_LIMIT}` }),
    ...trackingFlags,
    ...controlFlags,
  },
  epilog: JSON_SHAPES,
  async run({ values, sources, args: [workspace] }) {
    if (workspace === undefined && sources.logs === "command line") throw new UsageError("--logs needs a WORKSPACE");
    const inactiveMs = inactiveTimeoutMs(values);
    const client = await controlClientFor(values);
    if (workspace === undefined) {
      const lines = client === undefined ? await readDatabase(values, inactiveMs) : await askServer(client);
      process.stdout.write(values.json ? `${JSON.stringify(lines)}\n` : summaryTable(lines));
      return;
    }
    const request = { workspace, logLimit: values.logs };
    const res = client === undefined
      ? await withDatabase(values, (db) => readWorkspaceAgents(db, { ...request, inactiveTimeoutMs: inactiveMs }))
      : await client.getWorkspaceAgents(request);
    const detail = workspaceStatus(res);
    process.stdout.write(values.json ? `${JSON.stringify(detail)}\n` : detailText(detail));
  },
});

function summaryTable(lines: StatusLine[]): string {
  if (lines.length === 0) return "no agents\n";
  return table([SUMMARY_HEADER, ...lines.map(summaryRow)]);
}

const SUMMARY_HEADER = ["WORKSPACE", "AGENT", "BUILD", "STATUS", "LIFECYCLE", "LAST CONNECTED"];

function summaryRow(l: StatusLine): string[] {
  return [l.workspace, l.agent, String(l.build_number), l.status, l.lifecycle_state, l.last_connected_at ?? "never"];
}

async function readDatabase(values: DatabaseLocation, inactiveMs: number): Promise<StatusLine[]> {
  const overviews = await withDatabase(values, (db) => listAgentOverviews(db));
  const now = new Date();
  return overviews.map((o) => ({
    workspace_id: o.workspaceId,
    workspace: `${o.ownerUsername}/${o.workspaceName}`,
    agent_id: o.agent.id,
    agent: o.agent.name,
    build_number: o.buildNumber,
    status: agentStatus(o.agent, now, inactiveMs).status,
    lifecycle_state: o.agent.lifecycleState,
    last_connected_at: o.agent.lastConnectedAt?.toISOString() ?? null,
  }));
}

/** The same lines from ListAgents. */
async function askServer(client: ControlClient): Promise<StatusLine[]> {
  const { agents } = await client.listAgents({});
  return agents.map(statusLine);
}

/** An AgentSummary as a status line: enum names in lower case are the database's values. */
function statusLine(a: AgentSummary): StatusLine {
  return {
    workspace_id: a.workspaceId,
    workspace: `${a.owner}/${a.workspaceName}`,
    agent_id: a.agentId,
    agent: a.agentName,
    build_number: a.buildNumber,
    status: enumName(AgentStatus, a.status),
    lifecycle_state: enumName(LifecycleState, a.lifecycleState),
    last_connected_at: a.lastConnectedAt ? timestampDate(a.lastConnectedAt).toISOString() : null,
  };
}

/** GetWorkspaceAgents' answer, from the server or read here, as `status WORKSPACE --json` prints it. */
function workspaceStatus(res: GetWorkspaceAgentsResponse): WorkspaceStatus {
  return {
    workspace_id: res.workspaceId,
    workspace: `${res.owner}/${res.workspaceName}`,
    build_number: res.buildNumber,
    agents: res.agents.map((a) => ({
      ...statusLine(a.summary!),
      metadata: a.metadata.map((m) => ({
        key: m.key, display_name: m.displayName, value: m.value, error: m.error,
        collected_at: m.collectedAt ? timestampDate(m.collectedAt).toISOString() : null,
      })),
      apps: a.apps.map((app) => ({ slug: app.slug, display_name: app.displayName, url: app.url ?? null, health: enumName(AppHealth, app.health) })),
      logs: a.logs.map((l) => ({
        created_at: timestampDate(l.createdAt!).toISOString(), level: enumName(LogLevel, l.level), source: l.source, output: l.output,
      })),
      logs_overflowed: a.logsOverflowed,
    })),
  };
}

/** A proto enum value's name without its prefix, in lower case ("HEALTHY" → "healthy"). */
function enumName(e: Record<number, string>, value: number): string {
  return (e[value] ?? "unknown").toLowerCase();
}

/** Each agent: the status table's line, then its metadata, apps and logs, indented. */
function detailText(w: WorkspaceStatus): string {
  if (w.agents.length === 0) return "no agents\n";
  return w.agents.map((a) => {
    const metadata = a.metadata.length === 0 ? "no metadata\n" : table([
      ["METADATA", "KEY", "VALUE", "COLLECTED AT"],
      ...a.metadata.map((m) => [m.display_name, m.key, m.error === "" ? m.value : `error: ${m.error}`, m.collected_at ?? "never"]),
    ]);
    const apps = a.apps.length === 0 ? "no apps\n" : table([["APP", "HEALTH", "URL"], ...a.apps.map((app) => [app.slug, app.health, app.url ?? ""])]);
    const logs = a.logs.length === 0 ? "no logs\n" : table([
      [`LOGS (LAST ${a.logs.length})`, "LEVEL", "SOURCE", "OUTPUT"],
      ...a.logs.map((l) => [l.created_at, l.level, l.source, l.output]),
    ]) + (a.logs_overflowed ? "(the agent sent more logs than the server keeps)\n" : "");
    return table([SUMMARY_HEADER, summaryRow(a)]) + [metadata, apps, logs].map((section) => `\n${indent(section)}`).join("");
  }).join("\n");
}

function indent(text: string): string {
  return text.replace(/^(?=.)/gm, "  ");
}
