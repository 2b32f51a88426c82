import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { UpdateStatsResponseSchema, type UpdateStatsRequest, type UpdateStatsResponse } from "../../gen/coder/agent/v2/agent_pb.js";
import type { AgentApiContext } from "./context.js";
import { MAX_STATS_MAP_ENTRIES } from "./limits.js";
import { invalid } from "./rpc-errors.js";

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
        connectionsByProto: numbers("connections_by_proto", stats.connectionsByProto),
        connectionCount: count("connection_count", stats.connectionCount),
        rxPackets: count("rx_packets", stats.rxPackets),
        rxBytes: count("rx_bytes", stats.rxBytes),
        txPackets: count("tx_packets", stats.txPackets),
        txBytes: count("tx_bytes", stats.txBytes),
        connectionMedianLatencyMs: stats.connectionMedianLatencyMs,
        sessionCountVscode: count("session_count_vscode", stats.sessionCountVscode),
        sessionCountJetbrains: count("session_count_jetbrains", stats.sessionCountJetbrains),
        sessionCountReconnectingPty: count("session_count_reconnecting_pty", stats.sessionCountReconnectingPty),
        sessionCountSsh: count("session_count_ssh", stats.sessionCountSsh),
        usage: false,
        sessionCounts: numbers("session_counts", stats.sessionCounts),
      });
      if (stats.connectionCount <= 0n) return response;
      api.batchers.usage.add(identity.workspaceId);
      // Workspace-wide: Coder sends this kind without an agent id. Not awaited: the report is
      // answered without waiting for the grouped NOTIFY (publishing never throws; it logs).
      void api.publishWorkspaceEvent(identity.ownerId, { kind: "stats_update", workspace_id: identity.workspaceId });
      return response;
    },
  };
}

/**
 * A count as a number, exact: past 2^53 a Number rounds, and 2^63 − 1 rounds up past the bigint
 * column's range, which would fail the whole batch of every agent's rows; such a report is refused.
 */
function count(field: string, v: bigint): number {
  if (v > MAX_SAFE || v < -MAX_SAFE) throw invalid(`stats.${field} ${v} is out of range`);
  return Number(v);
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function numbers(field: string, map: { [key: string]: bigint }): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(map)) out[k] = count(`${field}[${JSON.stringify(k)}]`, v);
  return out;
}
