import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { AgentStatusSchema, LifecycleStateSchema, type AgentSummarySchema } from "../../gen/agentgate/control/v1/control_pb.js";
import type { Queryable } from "../db/database.js";
import { LIFECYCLE_STATES } from "../db/enums.js";
import { listAgentOverviews, type AgentOverview } from "../db/queries/agent-overviews.js";
import { enumMapping } from "../protocol/enum-mapping.js";
import { AGENT_STATUSES, agentStatus } from "../status/agent-status.js";

/** An agent as ListAgents and WatchAgents report it. */
export type AgentSummaryInit = MessageInitShape<typeof AgentSummarySchema>;

const STATUSES = enumMapping(AgentStatusSchema, AGENT_STATUSES);
const LIFECYCLE = enumMapping(LifecycleStateSchema, LIFECYCLE_STATES);

/** One agent with its status computed at `now`, as `agentgate status` computes it. */
export function agentSummary(o: AgentOverview, now: Date, inactiveTimeoutMs: number): AgentSummaryInit {
  return {
    workspaceId: o.workspaceId,
    owner: o.ownerUsername,
    workspaceName: o.workspaceName,
    agentId: o.agent.id,
    agentName: o.agent.name,
    buildNumber: o.buildNumber,
    status: STATUSES.toProto(agentStatus(o.agent, now, inactiveTimeoutMs).status),
    lifecycleState: LIFECYCLE.toProto(o.agent.lifecycleState),
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
