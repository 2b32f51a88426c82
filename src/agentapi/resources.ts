import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  GetResourcesMonitoringConfigurationResponseSchema,
  PushResourcesMonitoringUsageResponseSchema,
  type GetResourcesMonitoringConfigurationResponse,
  type PushResourcesMonitoringUsageRequest,
  type PushResourcesMonitoringUsageResponse,
} from "../../gen/coder/agent/v2/agent_pb.js";
import type { MonitorState } from "../db/enums.js";
import { getMemoryMonitor, listVolumeMonitors, updateMemoryMonitor, updateVolumeMonitor } from "../db/queries/resource-monitors.js";
import type { AgentApiContext } from "./context.js";
import { MAX_RESOURCE_DATAPOINTS_PER_CALL, MAX_VOLUMES_PER_DATAPOINT } from "./limits.js";
import { internal, invalid } from "./rpc-errors.js";

/**
 * Resource monitoring numbers, as the newest coderd releases use them: agents collect every 10 s and push
 * 20 datapoints; a monitor goes NOK when 50 % of them in a row, or 20 % in all, are over its
 * threshold; after an alert, the next one waits 30 minutes.
 */
export const RESOURCES_MONITORING = {
  numDatapoints: 20,
  collectionIntervalSeconds: 10,
  consecutiveNoksPercent: 50,
  minimumNoksPercent: 20,
  debounceMs: 30 * 60_000,
} as const;

/** One datapoint judged against a threshold; "unknown" when the datapoint lacks that resource. */
type PointState = "OK" | "NOK" | "unknown";

/**
 * GetResourcesMonitoringConfiguration and PushResourcesMonitoringUsage: per monitor an OK/NOK
 * state machine over each push's datapoints. Where Coder notifies the owner on OK→NOK, agentgate
 * publishes `agt_resources_alert` (one for memory, one for all newly NOK volumes), debounced.
 */
export function resourcesApi(api: AgentApiContext) {
  const { db } = api;
  const monitors = (agentId: string) =>
    Promise.all([getMemoryMonitor(db, agentId), listVolumeMonitors(db, agentId)]).catch((err: unknown) => {
      throw internal("fetch resource monitors", err);
    });
  return {
    async getResourcesMonitoringConfiguration(_req: unknown, ctx: HandlerContext): Promise<GetResourcesMonitoringConfigurationResponse> {
      const { agent } = await api.loadCaller(ctx);
      const [memory, volumes] = await monitors(agent.id);
      return create(GetResourcesMonitoringConfigurationResponseSchema, {
        config: { numDatapoints: RESOURCES_MONITORING.numDatapoints, collectionIntervalSeconds: RESOURCES_MONITORING.collectionIntervalSeconds },
        memory: memory === undefined ? undefined : { enabled: memory.enabled },
        volumes: volumes.map((v) => ({ enabled: v.enabled, path: v.path })),
      });
    },

    async pushResourcesMonitoringUsage(req: PushResourcesMonitoringUsageRequest, ctx: HandlerContext): Promise<PushResourcesMonitoringUsageResponse> {
      const { identity, agent } = await api.loadCaller(ctx);
      if (req.datapoints.length > MAX_RESOURCE_DATAPOINTS_PER_CALL) {
        throw new ConnectError(`${req.datapoints.length} datapoints; at most ${MAX_RESOURCE_DATAPOINTS_PER_CALL} per call`, Code.ResourceExhausted);
      }
      const crowded = req.datapoints.find((dp) => dp.volumes.length > MAX_VOLUMES_PER_DATAPOINT);
      if (crowded !== undefined) throw new ConnectError(`a datapoint has ${crowded.volumes.length} volumes; at most ${MAX_VOLUMES_PER_DATAPOINT}`, Code.ResourceExhausted);
      const [memory, volumes] = await monitors(agent.id);
      const now = api.clock();
      const alert = () =>
        api.publishWorkspaceEvent(identity.ownerId, { kind: "agt_resources_alert", workspace_id: identity.workspaceId, agent_id: agent.id });

      // Check every enabled volume has datapoints before writing anything.
      const volumePoints = new Map<string, PointState[]>();
      for (const dp of req.datapoints) {
        for (const v of dp.volumes) {
          const list = volumePoints.get(v.volume) ?? [];
          volumePoints.set(v.volume, list);
          const monitor = volumes.find((m) => m.path === v.volume);
          if (monitor !== undefined) list.push(judge(v.used, v.total, monitor.threshold));
        }
      }
      const enabledVolumes = volumes.filter((v) => v.enabled);
      for (const v of enabledVolumes) if (!volumePoints.has(v.path)) throw invalid(`volume not found: ${v.path}`);

      try {
        if (memory?.enabled) {
          const points = req.datapoints.map((dp) => (dp.memory === undefined ? "unknown" : judge(dp.memory.used, dp.memory.total, memory.threshold)));
          const step = advance(memory, points, now);
          await updateMemoryMonitor(db, { agentId: agent.id, state: step.state, debouncedUntil: step.debouncedUntil, now });
          if (step.alert) await alert();
        }
        let volumeAlert = false;
        for (const v of enabledVolumes) {
          const step = advance(v, volumePoints.get(v.path)!, now);
          await updateVolumeMonitor(db, { agentId: agent.id, path: v.path, state: step.state, debouncedUntil: step.debouncedUntil, now });
          volumeAlert ||= step.alert;
        }
        if (volumeAlert) await alert();
      } catch (err) {
        throw internal("update resource monitor", err);
      }
      return create(PushResourcesMonitoringUsageResponseSchema);
    },
  };
}

/** A datapoint is NOK at or above the threshold percentage (whole percent, as Coder computes it). */
function judge(used: bigint, total: bigint, thresholdPercent: number): PointState {
  if (total <= 0n) return "unknown";
  const percent = Math.trunc((Number(used) / Number(total)) * 100);
  return percent < thresholdPercent ? "OK" : "NOK";
}

/**
 * The next state of a monitor after a push (Coder's `NextState`), whether to alert (OK→NOK past
 * the debounce) and the new debounce time.
 */
export function advance(
  monitor: { state: MonitorState; debouncedUntil: Date },
  points: PointState[],
  now: Date,
): { state: MonitorState; alert: boolean; debouncedUntil: Date } {
  const state = nextState(monitor.state, points);
  const alert = monitor.state === "OK" && state === "NOK" && now.getTime() > monitor.debouncedUntil.getTime();
  return { state, alert, debouncedUntil: alert ? new Date(now.getTime() + RESOURCES_MONITORING.debounceMs) : monitor.debouncedUntil };
}

function nextState(old: MonitorState, points: PointState[]): MonitorState {
  if (points.length === 0) return old;
  const percent = (n: number) => Math.trunc((n * 100) / points.length);
  let run = 0;
  let longestRun = 0;
  let noks = 0;
  let oks = 0;
  for (const p of points) {
    run = p === "NOK" ? run + 1 : 0;
    longestRun = Math.max(longestRun, run);
    if (p === "NOK") noks++;
    if (p === "OK") oks++;
  }
  if (percent(longestRun) >= RESOURCES_MONITORING.consecutiveNoksPercent) return "NOK";
  if (percent(noks) >= RESOURCES_MONITORING.minimumNoksPercent) return "NOK";
  if (oks === points.length) return "OK";
  // Unknown points could have been either; keep the old state.
  return old;
}
