import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { AgentStatus, LifecycleState, type AgentSummarySchema } from "../../gen/agentgate/control/v1/control_pb.js";
import type { Queryable } from "../db/database.js";
import type { LifecycleState as LifecycleStateName } from "../db/enums.js";
import { listAgentOverviews, type AgentOverview } from "../db/queries/agents.js";
import { agentStatus, type AgentStatus as AgentStatusName } from "../status/agent-status.js";

/** An agent as ListAgents and WatchAgents report it. */
export type AgentSummaryInit = MessageInitShape<typeof AgentSummarySchema>;

const STATUSES: Record<AgentStatusName, AgentStatus> = {
  connecting: AgentStatus.CONNECTING,
  connected: AgentStatus.CONNECTED,
  disconnected: AgentStatus.DISCONNECTED,
  timeout: AgentStatus.TIMEOUT,
};

const LIFECYCLE_STATES: Record<LifecycleStateName, LifecycleState> = {
  created: LifecycleState.CREATED,
  starting: LifecycleState.STARTING,
  start_timeout: LifecycleState.START_TIMEOUT,
  start_error: LifecycleState.START_ERROR,
  ready: LifecycleState.READY,
  shutting_down: LifecycleState.SHUTTING_DOWN,
  shutdown_timeout: LifecycleState.SHUTDOWN_TIMEOUT,
  shutdown_error: LifecycleState.SHUTDOWN_ERROR,
  off: LifecycleState.OFF,
};

/** One agent with its status computed at `now`, as `agentgate status` computes it. */
export function agentSummary(o: AgentOverview, now: Date, inactiveTimeoutMs: number): AgentSummaryInit {
  return {
    workspaceId: o.workspaceId,
    owner: o.ownerUsername,
    workspaceName: o.workspaceName,
    agentId: o.agent.id,
    agentName: o.agent.name,
    buildNumber: o.buildNumber,
    status: STATUSES[agentStatus(o.agent, now, inactiveTimeoutMs).status],
    lifecycleState: LIFECYCLE_STATES[o.agent.lifecycleState],
    ...(o.agent.lastConnectedAt ? { lastConnectedAt: timestampFromDate(o.agent.lastConnectedAt) } : {}),
    version: o.agent.version,
    apiVersion: o.agent.apiVersion,
    replicaId: o.agent.lastConnectedReplicaId ?? "",
  };
}

/** The agents of the latest builds (one owner's with `ownerId`), with their overviews for callers that need the rows. */
export async function readAgentSummaries(
  q: Queryable,
  filter: { ownerId?: string },
  inactiveTimeoutMs: number,
  now = new Date(),
): Promise<{ overviews: AgentOverview[]; agents: AgentSummaryInit[] }> {
  const overviews = await listAgentOverviews(q, filter);
  return { overviews, agents: overviews.map((o) => agentSummary(o, now, inactiveTimeoutMs)) };
}
