import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext } from "@connectrpc/connect";
import { UpdateStatsResponseSchema, type UpdateStatsRequest, type UpdateStatsResponse } from "../../gen/coder/agent/v2/agent_pb.js";
import type { AgentStatsRow } from "../db/queries/stats.js";
import type { LoadCaller } from "./caller.js";
import type { Clock, PublishWorkspaceEventFn } from "./publish.js";

/** What UpdateStats needs (agent-api.md §2.3). */
export interface StatsDeps {
  loadCaller: LoadCaller;
  /** Queues a row for the stats batcher; false when it was dropped (queue full). */
  enqueueStats(row: AgentStatsRow): boolean;
  /** Marks a workspace used now; the usage tracker writes `last_used_at` on its next flush. */
  markWorkspaceUsed(workspaceId: string): void;
  publishWorkspaceEvent: PublishWorkspaceEventFn;
  now: Clock;
  /** `--agent-stats-interval`, returned to every caller as `report_interval`. */
  reportIntervalMs: number;
}

/**
 * UpdateStats: answers the report interval; a report becomes a row in the stats batcher, and one
 * with open connections marks the workspace used and publishes `stats_update`.
 */
export function statsApi(deps: StatsDeps) {
  return {
    async updateStats(req: UpdateStatsRequest, ctx: HandlerContext): Promise<UpdateStatsResponse> {
      const response = create(UpdateStatsResponseSchema, { reportInterval: durationFromMs(deps.reportIntervalMs) });
      const { identity, agent } = await deps.loadCaller(ctx);
      // The agent's first call carries no stats: it only asks for the interval.
      const stats = req.stats;
      if (stats === undefined) return response;
      deps.enqueueStats({
        id: randomUUID(),
        createdAt: deps.now(),
        userId: identity.ownerId,
        agentId: agent.id,
        workspaceId: identity.workspaceId,
        // agentgate has no templates.
        templateId: null,
        connectionsByProto: numbers(stats.connectionsByProto),
        connectionCount: Number(stats.connectionCount),
        rxPackets: Number(stats.rxPackets),
        rxBytes: Number(stats.rxBytes),
        txPackets: Number(stats.txPackets),
        txBytes: Number(stats.txBytes),
        connectionMedianLatencyMs: stats.connectionMedianLatencyMs,
        sessionCountVscode: Number(stats.sessionCountVscode),
        sessionCountJetbrains: Number(stats.sessionCountJetbrains),
        sessionCountReconnectingPty: Number(stats.sessionCountReconnectingPty),
        sessionCountSsh: Number(stats.sessionCountSsh),
        usage: false,
        sessionCounts: numbers(stats.sessionCounts),
      });
      if (stats.connectionCount <= 0n) return response;
      deps.markWorkspaceUsed(identity.workspaceId);
      // Workspace-wide: Coder sends this kind without an agent id.
      await deps.publishWorkspaceEvent(identity.ownerId, { kind: "stats_update", workspace_id: identity.workspaceId });
      return response;
    },
  };
}

function numbers(map: { [key: string]: bigint }): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(map)) out[k] = Number(v);
  return out;
}
