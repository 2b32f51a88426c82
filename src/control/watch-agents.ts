import type { MessageInitShape } from "@bufbuild/protobuf";
import type { WatchAgentsResponseSchema } from "../../gen/agentgate/control/v1/control_pb.js";
import type { Database } from "../db/database.js";
import { ANY_OWNER_CHANNEL, subscribeWorkspaceState, workspaceOwnerChannel } from "../db/events.js";
import type { AgentOverview } from "../db/queries/agents.js";
import type { Logger } from "../log.js";
import { readAgentSummaries, type AgentSummaryInit } from "./agent-summary.js";
import { watchLoop } from "../db/watch-loop.js";

/** What WatchAgents needs. */
export interface WatchAgentsDeps {
  db: Database;
  logger: Logger;
  /** The server's AgentInactiveDisconnectTimeout: a connected agent silent this long shows disconnected. */
  inactiveTimeoutMs: number;
}

/**
 * One owner's agents (every owner's without `ownerId`): the current list, then the list again
 * whenever it changes. Listens on `workspace_owner:<ownerId>` (or the any-owner channel) before
 * the first read so no event falls in between, and re-reads when a status changes with time
 * alone (a connection timeout passing, a connected agent going quiet). Ends when `signal` aborts.
 */
export function watchAgents(
  deps: WatchAgentsDeps,
  ownerId: string | undefined,
  signal: AbortSignal,
): AsyncGenerator<MessageInitShape<typeof WatchAgentsResponseSchema>> {
  const channel = ownerId === undefined ? ANY_OWNER_CHANNEL : workspaceOwnerChannel(ownerId);
  return watchLoop({
    listen: (notify) => subscribeWorkspaceState(deps.db.pubsub, channel, notify),
    async read(now) {
      const { overviews, agents } = await readAgentSummaries(deps.db, ownerId === undefined ? {} : { ownerId }, deps.inactiveTimeoutMs, now);
      return { value: { agents }, key: summariesKey(agents), changesAt: nextStatusChange(overviews, now, deps.inactiveTimeoutMs) };
    },
  }, signal);
}

/**
 * What a watcher is told about. `last_connected_at` is left out: heartbeats move it every few
 * seconds, and a list resent for each would bury the changes that matter.
 */
function summariesKey(agents: AgentSummaryInit[]): string {
  return JSON.stringify(agents.map((a) => [a.workspaceId, a.workspaceName, a.agentId, a.buildNumber, a.status, a.lifecycleState, a.version, a.apiVersion, a.replicaId]));
}

/**
 * The earliest time (ms) after `now` at which an agent's computed status changes with no write
 * (a never-connected agent passing its connection timeout, a connected one going quiet), or
 * undefined when none will. @internal
 */
export function nextStatusChange(overviews: AgentOverview[], now: Date, inactiveTimeoutMs: number): number | undefined {
  let next: number | undefined;
  for (const { agent } of overviews) {
    let at: number | undefined;
    if (agent.firstConnectedAt === null) {
      if (agent.connectionTimeoutSeconds > 0) at = agent.createdAt.getTime() + agent.connectionTimeoutSeconds * 1000 + 1;
    } else if (agent.lastConnectedAt !== null && (agent.disconnectedAt === null || agent.disconnectedAt < agent.lastConnectedAt)) {
      at = agent.lastConnectedAt.getTime() + inactiveTimeoutMs + 1;
    }
    if (at !== undefined && at > now.getTime() && (next === undefined || at < next)) next = at;
  }
  return next;
}
