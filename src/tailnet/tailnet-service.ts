import { setTimeout as sleep } from "node:timers/promises";
import type { ServiceImpl } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { TelemetryResponseSchema, type DERPMap, type Tailnet } from "../../gen/coder/tailnet/v2/tailnet_pb.js";
import { coordinationHandlers, type CoordinationOptions } from "./coordination-handlers.js";
import { derpMapsEqual, type DerpMapSource } from "./derp-map-source.js";

/** What the Tailnet service is built from, handed whole, as the Agent service's options are. */
export interface TailnetServiceOptions {
  derpMaps: DerpMapSource;
  /** How often StreamDERPMaps looks for a changed map (coderd: 5 s). */
  derpMapPollMs: number;
  /** Counts telemetry events received; agentgate does not store them. */
  onTelemetry?: (events: number) => void;
  /** Coordinate, RefreshResumeToken and WorkspaceUpdates; without it they answer Unimplemented. */
  coordination?: CoordinationOptions;
}

/** The Tailnet service, on agent connections and (for clients) the client endpoint. */
export function tailnetService(options: TailnetServiceOptions): Partial<ServiceImpl<typeof Tailnet>> {
  return {
    ...(options.coordination !== undefined ? coordinationHandlers(options.coordination) : {}),
    async *streamDERPMaps(_req, ctx) {
      let last: DERPMap | undefined;
      while (!ctx.signal.aborted) {
        const map = await options.derpMaps.current();
        if (last === undefined || !derpMapsEqual(last, map)) {
          last = map;
          yield map;
        }
        await sleep(options.derpMapPollMs, undefined, { signal: ctx.signal }).catch(() => undefined);
      }
    },
    postTelemetry(req) {
      options.onTelemetry?.(req.events.length);
      return create(TelemetryResponseSchema);
    },
  };
}
