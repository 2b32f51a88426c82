import { setTimeout as sleep } from "node:timers/promises";
import type { ServiceImpl } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { TelemetryResponseSchema, type DERPMap, type Tailnet } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { coordinationHandlers, type CoordinationDeps } from "./coordination-handlers.js";
import { derpMapsEqual, type DerpMapSource } from "./derp-map-source.js";

export interface TailnetServiceDeps {
  derpMaps: DerpMapSource;
  /** How often StreamDERPMaps looks for a changed map (agent-api.md §3.2: 5 s). */
  derpMapPollMs: number;
  /** Counts telemetry events received; agentgate does not store them. */
  onTelemetry?: (events: number) => void;
  /** Coordinate, RefreshResumeToken and WorkspaceUpdates; without it they answer Unimplemented. */
  coordination?: CoordinationDeps;
}

/** The Tailnet service, on agent connections and (for clients) the client endpoint. */
export function tailnetService(deps: TailnetServiceDeps): Partial<ServiceImpl<typeof Tailnet>> {
  return {
    ...(deps.coordination !== undefined ? coordinationHandlers(deps.coordination) : {}),
    async *streamDERPMaps(_req, ctx) {
      let last: DERPMap | undefined;
      while (!ctx.signal.aborted) {
        const map = await deps.derpMaps.current();
        if (last === undefined || !derpMapsEqual(last, map)) {
          last = map;
          yield map;
        }
        await sleep(deps.derpMapPollMs, undefined, { signal: ctx.signal }).catch(() => undefined);
      }
    },
    postTelemetry(req) {
      deps.onTelemetry?.(req.events.length);
      return create(TelemetryResponseSchema);
    },
  };
}
