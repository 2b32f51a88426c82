import type { Client } from "@connectrpc/connect";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { AppHealth, type Agent, type WorkspaceApp } from "../../gen/coder/agent/v2/agent_pb.js";
import type { Logger } from "../log.js";
import { oneAtATime } from "./one-at-a-time.js";

/** A health check that hasn't answered in this long failed. */
const CHECK_TIMEOUT_MS = 5_000;

/**
 * Checks each app that has a health check URL on its interval, as Coder's agent does: any answer
 * below 500 is a success and makes the app healthy; `threshold` failures in a row make it
 * unhealthy. Changed healths are reported together with BatchUpdateAppHealths.
 */
export function watchAppHealth(agent: Client<typeof Agent>, apps: WorkspaceApp[], logger: Logger, signal: AbortSignal): void {
  for (const app of apps) {
    const check = app.healthcheck;
    if (!check?.url || !check.interval) continue;
    const intervalMs = durationMs(check.interval);
    if (intervalMs <= 0) continue;
    let failures = 0;
    let reported: AppHealth | undefined;
    const tick = oneAtATime(async () => {
      let ok = false;
      try {
        const res = await fetch(check.url, { signal: AbortSignal.any([signal, AbortSignal.timeout(CHECK_TIMEOUT_MS)]) });
        await res.body?.cancel();
        ok = res.status < 500;
      } catch {
        ok = false;
      }
      if (signal.aborted) return;
      failures = ok ? 0 : failures + 1;
      const health = ok ? AppHealth.HEALTHY : failures >= Math.max(1, check.threshold) ? AppHealth.UNHEALTHY : reported;
      if (health === undefined || health === reported) return;
      try {
        await agent.batchUpdateAppHealths({ updates: [{ id: app.id, health }] }, { signal });
        reported = health;
        logger.info({ app: app.slug, health: AppHealth[health].toLowerCase() }, "app health reported");
      } catch (err) {
        if (!signal.aborted) logger.warn({ app: app.slug, err: (err as Error).message }, "app health not sent");
      }
    });
    const timer = setInterval(() => void tick(), intervalMs);
    signal.addEventListener("abort", () => clearInterval(timer), { once: true });
  }
}
