import { Batcher } from "../db/batcher.js";
import type { MetadataUpdate } from "../db/queries/metadata.js";
import type { AgentStatsRow } from "../db/queries/stats.js";
import type { Logger } from "../log.js";
import type { Clock } from "./context.js";
import { MAX_METADATA_ENTRIES_PER_CALL } from "./limits.js";

/**
 * Coder's stats batcher: 1,024 rows a statement, or every second; 8,192 may wait, at most 64 of
 * one agent (an agent reports every 30 s; one calling in a loop can't take the others' room).
 */
export const STATS_BATCH = { maxItems: 1024, maxQueue: 8192, maxPerGroup: 64, intervalMs: 1_000 } as const;

/**
 * The metadata batcher's size: 1,000 results a statement, 10,000 waiting (a few seconds of a
 * process's agents: 10,000 agents reporting 2 keys every 10 s send 2,000 a second), at most 256 of
 * one agent (a whole BatchUpdateMetadata), so one agent flooding it can't push out the others'
 * results. Coder's channel holds 500 × 5, sized for its replicas' fleets: at 2,500 a process of
 * 10,000 agents dropped results whenever a flush took over a second. Values are at most 2 KiB
 * and errors 2 KiB, so the queue holds 40 MiB at the very worst, a few MiB in practice. Its
 * interval is `--metadata-flush-interval`.
 */
export const METADATA_BATCH = { maxItems: 1_000, maxQueue: 10_000, maxPerGroup: MAX_METADATA_ENTRIES_PER_CALL } as const;

/** The stats batcher: rows of many agents inserted in one statement per flush. */
export function createStatsBatcher(write: (rows: AgentStatsRow[]) => Promise<void>, logger?: Logger): Batcher<AgentStatsRow> {
  return new Batcher({ name: "stats", ...STATS_BATCH, group: (row) => row.agentId, flush: write, logger });
}

/**
 * The metadata batcher: results of many agents written (newest per agent+key: a newer result
 * replaces the waiting one in its slot) and announced on `workspace_agent_metadata_batch` in one
 * statement per flush.
 */
export function createMetadataBatcher(
  write: (updates: MetadataUpdate[]) => Promise<void>,
  intervalMs: number,
  logger?: Logger,
): Batcher<MetadataUpdate> {
  return new Batcher({
    name: "metadata", ...METADATA_BATCH, intervalMs, flush: write, logger,
    key: (u) => `${u.agentId}\u0000${u.key}`,
    group: (u) => u.agentId,
  });
}

/**
 * The usage batcher's size: every workspace marked used waits for the interval and goes in one
 * statement; 100,000 distinct workspaces may wait, plenty for one replica's fleet, and a bound so a
 * flood of ids can't grow memory without limit.
 */
export const USAGE_BATCH = { maxItems: 100_000, maxQueue: 100_000 } as const;

/**
 * The usage batcher: workspaces whose agents reported open connections, each written once per flush
 * however often its agents report, with `last_used_at` = the flush time, as in Coder. Its interval
 * is `--usage-flush-interval`.
 */
export function createUsageBatcher(
  write: (workspaceIds: string[], at: Date) => Promise<void>,
  intervalMs: number,
  clock: Clock,
  logger?: Logger,
): Batcher<string> {
  return new Batcher({ name: "usage", ...USAGE_BATCH, intervalMs, key: (id) => id, flush: (ids) => write(ids, clock()), logger });
}
