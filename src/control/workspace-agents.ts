import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  AppHealth,
  GetWorkspaceAgentsResponseSchema,
  LogLevel,
  type GetWorkspaceAgentsResponse,
} from "../../gen/agentgate/control/v1/control_pb.js";
import type { Queryable } from "../db/database.js";
import type { AppHealth as AppHealthName, LogLevel as LogLevelName } from "../db/enums.js";
import { listAgentOverviews, type AgentOverview } from "../db/queries/agents.js";
import { listAppsByAgentId } from "../db/queries/apps.js";
import { getLatestBuild } from "../db/queries/builds.js";
import { listLatestLogs } from "../db/queries/logs.js";
import { listMetadata } from "../db/queries/metadata.js";
import { getUserById } from "../db/queries/users.js";
import { ProvisionError, resolveWorkspace } from "../provision/provision.js";
import { agentSummary } from "./agent-summary.js";

/** Log lines per agent when the caller names no limit: a screenful. */
export const DEFAULT_LOG_LIMIT = 20;

/**
 * Most log lines per agent one call returns: with lines of up to 1024 characters that is about
 * 1 MiB per agent, the most a status answer should carry; the full log is a stream's job.
 */
export const MAX_LOG_LIMIT = 1000;

const APP_HEALTHS: Record<AppHealthName, AppHealth> = {
  disabled: AppHealth.DISABLED,
  initializing: AppHealth.INITIALIZING,
  healthy: AppHealth.HEALTHY,
  unhealthy: AppHealth.UNHEALTHY,
};

const LOG_LEVELS: Record<LogLevelName, LogLevel> = {
  trace: LogLevel.TRACE,
  debug: LogLevel.DEBUG,
  info: LogLevel.INFO,
  warn: LogLevel.WARN,
  error: LogLevel.ERROR,
};

/** `collected_at`'s column default: the item was never reported. */
const NEVER_COLLECTED_YEAR = 1;

/**
 * GetWorkspaceAgents' answer, read from the database: the latest build's agents of the workspace
 * `ref` (an id or `owner/name`), each with its metadata, apps and last `logLimit` log lines. The
 * CLI calls it too when it reads the database itself, so both paths print the same message.
 * Throws {@link ProvisionError} for an unknown workspace, a bad reference or a limit out of range.
 */
export async function readWorkspaceAgents(
  q: Queryable,
  p: WorkspaceAgentsQuery,
): Promise<GetWorkspaceAgentsResponse> {
  return (await readWorkspaceDetail(q, p)).response;
}

/** What {@link readWorkspaceAgents} reads. */
export interface WorkspaceAgentsQuery {
  workspace: string;
  logLimit?: number | undefined;
  inactiveTimeoutMs: number;
  now?: Date;
}

/** {@link readWorkspaceAgents}' answer with the agent rows it was made from, for a watcher's timers. @internal */
export async function readWorkspaceDetail(
  q: Queryable,
  p: WorkspaceAgentsQuery,
): Promise<{ response: GetWorkspaceAgentsResponse; overviews: AgentOverview[] }> {
  const logLimit = p.logLimit ?? DEFAULT_LOG_LIMIT;
  if (!Number.isInteger(logLimit) || logLimit < 0 || logLimit > MAX_LOG_LIMIT) {
    throw new ProvisionError(`log limit ${logLimit}: want 0 to ${MAX_LOG_LIMIT}`);
  }
  const workspace = await resolveWorkspace(q, p.workspace);
  const [owner, build, overviews] = await Promise.all([
    getUserById(q, workspace.ownerId),
    getLatestBuild(q, workspace.id),
    listAgentOverviews(q, { workspaceId: workspace.id }),
  ]);
  const now = p.now ?? new Date();
  const agents = await Promise.all(overviews.map(async (o) => {
    const [metadata, apps, logs] = await Promise.all([
      listMetadata(q, o.agent.id),
      listAppsByAgentId(q, o.agent.id),
      logLimit === 0 ? [] : listLatestLogs(q, { agentId: o.agent.id, limit: logLimit }),
    ]);
    return {
      summary: agentSummary(o, now, p.inactiveTimeoutMs),
      metadata: metadata.map((m) => ({
        key: m.key,
        displayName: m.displayName,
        value: m.value,
        error: m.error,
        ...(m.collectedAt.getUTCFullYear() > NEVER_COLLECTED_YEAR ? { collectedAt: timestampFromDate(m.collectedAt) } : {}),
        intervalSeconds: m.interval,
        timeoutSeconds: m.timeout,
      })),
      apps: apps.map((a) => ({ slug: a.slug, displayName: a.displayName, ...(a.url !== null ? { url: a.url } : {}), health: APP_HEALTHS[a.health] })),
      logs: logs.map((l) => ({
        id: BigInt(l.id),
        createdAt: timestampFromDate(l.createdAt),
        level: LOG_LEVELS[l.level],
        source: l.sourceDisplayName,
        output: l.output,
      })),
      logsOverflowed: o.agent.logsOverflowed,
    };
  }));
  const response = create(GetWorkspaceAgentsResponseSchema, {
    workspaceId: workspace.id,
    owner: owner?.username ?? "",
    workspaceName: workspace.name,
    buildNumber: build?.buildNumber ?? 0,
    agents,
  });
  return { response, overviews };
}
