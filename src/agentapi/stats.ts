import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { UpdateStatsResponseSchema, type UpdateStatsRequest, type UpdateStatsResponse } from "../../gen/coder/agent/v2/agent_pb.js";
import type { AgentApiContext } from "./context.js";
import { MAX_STATS_MAP_ENTRIES } from "./limits.js";

/**
 * UpdateStats: answers the report interval (`--agent-stats-interval`); a report becomes a row in
 * the stats batcher, and one with open connections marks the workspace used (the usage batcher
 * writes `last_used_at`) and publishes `stats_update`.
 */
export function statsApi(api: AgentApiContext) {
  return {
    async updateStats(req: UpdateStatsRequest, ctx: HandlerContext): Promise<UpdateStatsResponse> {
      const response = create(UpdateStatsResponseSchema, { reportInterval: durationFromMs(api.config.agentStatsIntervalMs) });
      const { identity, agent } = await api.loadCaller(ctx);
      // The agent's first call carries no stats: it only asks for the interval.
      const stats = req.stats;
      if (stats === undefined) return response;
      for (const [field, map] of [["connections_by_proto", stats.connectionsByProto], ["session_counts", stats.sessionCounts]] as const) {
        const entries = Object.keys(map).length;
        if (entries > MAX_STATS_MAP_ENTRIES) throw new ConnectError(`stats.${field} has ${entries} entries; at most ${MAX_STATS_MAP_ENTRIES}`, Code.ResourceExhausted);
      }
      api.batchers.stats.add({
        id: randomUUID(),
        createdAt: api.clock(),
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
      api.batchers.usage.add(identity.workspaceId);
      // Workspace-wide: Coder sends this kind without an agent id.
      await api.publishWorkspaceEvent(identity.ownerId, { kind: "stats_update", workspace_id: identity.workspaceId });
      return response;
    },
  };
}

function numbers(map: { [key: string]: bigint }): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(map)) out[k] = Number(v);
  return out;
}
