import type { MessageInitShape } from "@bufbuild/protobuf";
import type { WatchAgentsResponseSchema } from "../../gen/agentgate/control/v1/control_pb.js";
import type { Database } from "../db/database.js";
import { wakeOnWorkspaceState } from "../db/events.js";
import type { AgentOverview } from "../db/queries/agents.js";
import type { Logger } from "../log.js";
import { Wakeup } from "../wakeup.js";
import { readAgentSummaries, type AgentSummaryInit } from "./agent-summary.js";

/** setTimeout's largest delay; a later deadline is re-checked then. */
const MAX_TIMER_MS = 2_147_483_647;

/** What WatchAgents needs. */
export interface WatchAgentsDeps {
  db: Database;
  logger: Logger;
  /** The server's AgentInactiveDisconnectTimeout: a connected agent silent this long shows disconnected. */
  inactiveTimeoutMs: number;
}

/**
 * One owner's agents: the current list, then the list again whenever it changes. Subscribes to
 * `workspace_owner:<ownerId>` before the first read so no event falls in between. However many
 * events arrive while a list is being read or sent, the watcher holds one "changed" flag and
 * re-reads once: what is buffered per watcher stays bounded whatever the event rate or the
 * reader's speed. Timers re-read when a status changes with time alone (a connection timeout
 * passing, a connected agent going quiet). Ends when `signal` aborts.
 */
export async function* watchAgents(
  deps: WatchAgentsDeps,
  ownerId: string,
  signal: AbortSignal,
): AsyncGenerator<MessageInitShape<typeof WatchAgentsResponseSchema>> {
  const wakeup = new Wakeup();
  const stop = await wakeOnWorkspaceState(deps.db.pubsub, ownerId, signal, wakeup);
  let timer: NodeJS.Timeout | undefined;
  try {
    let lastKey: string | undefined;
    while (!signal.aborted) {
      const now = new Date();
      const { overviews, agents } = await readAgentSummaries(deps.db, { ownerId }, deps.inactiveTimeoutMs, now);
      const key = changeKey(agents);
      if (key !== lastKey) {
        lastKey = key;
        yield { agents };
      }
      clearTimeout(timer);
      const deadline = nextStatusChange(overviews, now, deps.inactiveTimeoutMs);
      if (deadline !== undefined) timer = setTimeout(() => wakeup.notify(), Math.min(deadline - now.getTime(), MAX_TIMER_MS));
      await wakeup.wait();
    }
  } finally {
    clearTimeout(timer);
    stop();
  }
}

/**
 * What a watcher is told about. `last_connected_at` is left out: heartbeats move it every few
 * seconds, and a list resent for each would bury the changes that matter.
 */
function changeKey(agents: AgentSummaryInit[]): string {
  return JSON.stringify(agents.map((a) => [a.workspaceId, a.workspaceName, a.agentId, a.buildNumber, a.status, a.lifecycleState]));
}

/**
 * The earliest time (ms) after `now` at which an agent's computed status changes with no write
 * (agent-status.ts rules 1 and 3), or undefined when none will.
 */
function nextStatusChange(overviews: AgentOverview[], now: Date, inactiveTimeoutMs: number): number | undefined {
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
