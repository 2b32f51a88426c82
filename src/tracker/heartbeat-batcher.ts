import { Batcher } from "../db/batcher.js";
import type { ConnectionRefresh } from "../db/queries/agent-connections.js";
import type { Logger } from "../log.js";

/** How often refreshed connection times are written: within 1 s of a tick, many agents per statement. */
export const HEARTBEAT_FLUSH_MS = 1_000;

/**
 * The heartbeat batcher's size: up to 10,000 agents a statement (the batch size the connection
 * write was measured at), and room for 100,000 connected agents, one refresh waiting each.
 */
export const HEARTBEAT_BATCH = { maxItems: 10_000, maxQueue: 100_000 } as const;

/**
 * The heartbeat batcher: every tracker's connection-time refreshes, written together so database
 * load grows with time, not with the number of agents. Refreshes coalesce per agent (the newest
 * wins), so what waits is bounded by the agents connected.
 */
export function createHeartbeatBatcher(write: (refreshes: ConnectionRefresh[]) => Promise<void>, logger?: Logger): Batcher<ConnectionRefresh> {
  return new Batcher({ name: "heartbeats", ...HEARTBEAT_BATCH, intervalMs: HEARTBEAT_FLUSH_MS, key: (r) => r.agentId, flush: write, logger });
}
