import { toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { GetWorkspaceAgentsResponseSchema, type WatchWorkspaceAgentsResponseSchema } from "../../gen/agentgate/control/v1/control_pb.js";
import type { Database } from "../db/database.js";
import { AGENT_METADATA_BATCH_CHANNEL, agentLogsChannel, parseWorkspaceEvent, workspaceOwnerChannel } from "../db/events.js";
import { resolveWorkspace } from "../provision/provision.js";
import { nextStatusChange } from "./watch-agents.js";
import { watchLoop } from "../db/watch-loop.js";
import { readWorkspaceDetail } from "./workspace-agents.js";

/**
 * Reads of one workspace are at least this far apart: an agent streaming its output sends a log
 * batch every few milliseconds, and four refreshes a second are plenty for a person watching.
 */
export const WORKSPACE_WATCH_MIN_INTERVAL_MS = 250;

/** What WatchWorkspaceAgents needs. */
export interface WatchWorkspaceAgentsDeps {
  db: Database;
  /** The server's AgentInactiveDisconnectTimeout, as for GetWorkspaceAgents. */
  inactiveTimeoutMs: number;
}

/**
 * One workspace's agents in detail, as GetWorkspaceAgents answers: now, then again whenever
 * the owner's events name the workspace (connection, lifecycle, app health, build; stats are left
 * out as they change nothing shown), a metadata flush names one of its agents, or one of its
 * agents stores log lines. The log channels follow the agents of the latest build. Throws
 * ProvisionError for an unknown workspace or a bad reference, before the stream starts.
 */
export async function watchWorkspaceAgents(
  deps: WatchWorkspaceAgentsDeps,
  p: { workspace: string; logLimit?: number | undefined },
  signal: AbortSignal,
): Promise<AsyncGenerator<MessageInitShape<typeof WatchWorkspaceAgentsResponseSchema>>> {
  const { db } = deps;
  const workspace = await resolveWorkspace(db, p.workspace);
  let agentIds = new Set<string>();
  const logListeners = new Map<string, () => void>();
  let notify: () => void = () => undefined;
  /** Listens to the log channels of exactly `ids`; a new one is followed by a read, for lines stored before it listened. */
  const followLogs = async (ids: Set<string>) => {
    for (const [id, stop] of logListeners) {
      if (!ids.has(id)) {
        stop();
        logListeners.delete(id);
      }
    }
    let added = false;
    for (const id of ids) {
      if (logListeners.has(id)) continue;
      logListeners.set(id, await db.pubsub.subscribe(agentLogsChannel(id), () => notify(), () => notify()));
      added = true;
    }
    if (added) notify();
  };
  return watchLoop({
    async listen(onChange) {
      notify = onChange;
      const stopOwner = await db.pubsub.subscribe(
        workspaceOwnerChannel(workspace.ownerId),
        (payload) => {
          const event = parseWorkspaceEvent(payload);
          if (event === undefined || (event.workspace_id === workspace.id && event.kind !== "stats_update")) notify();
        },
        notify,
      );
      const stopMetadata = await db.pubsub.subscribe(
        AGENT_METADATA_BATCH_CHANNEL,
        (payload) => {
          if (namesAny(payload, agentIds)) notify();
        },
        notify,
      );
      return () => {
        stopOwner();
        stopMetadata();
        for (const stop of logListeners.values()) stop();
        logListeners.clear();
      };
    },
    async read(now) {
      const { response, overviews } = await readWorkspaceDetail(db, { workspace: workspace.id, logLimit: p.logLimit, inactiveTimeoutMs: deps.inactiveTimeoutMs, now });
      agentIds = new Set(overviews.map((o) => o.agent.id));
      await followLogs(agentIds);
      return {
        value: { workspace: response },
        key: Buffer.from(toBinary(GetWorkspaceAgentsResponseSchema, response)).toString("base64"),
        changesAt: nextStatusChange(overviews, now, deps.inactiveTimeoutMs),
      };
    },
  }, signal, { minIntervalMs: WORKSPACE_WATCH_MIN_INTERVAL_MS });
}

/** Whether a `{"agent_ids": [...]}` payload names one of `ids`; one that can't be parsed counts, to be safe. */
function namesAny(payload: Buffer, ids: ReadonlySet<string>): boolean {
  try {
    const { agent_ids: named } = JSON.parse(payload.toString("utf8")) as { agent_ids: string[] };
    return named.some((id) => ids.has(id));
  } catch {
    return true;
  }
}
