import { Batcher } from "../db/batcher.js";
import type { MetadataUpdate } from "../db/queries/metadata.js";
import type { AgentStatsRow } from "../db/queries/stats.js";
import type { Logger } from "../log.js";

/** Coder's stats batcher: 1,024 rows a statement, or every second (agent-api.md §5). */
export const STATS_BATCH = { maxItems: 1024, intervalMs: 1_000 } as const;

/**
 * The metadata batcher's size: 500 results a statement, with room for five batches waiting
 * (Coder's channel of 500 × 5). Its interval is `--metadata-flush-interval`.
 */
export const METADATA_BATCH = { maxItems: 500, maxQueue: 2_500 } as const;

/** The stats batcher: rows of many agents inserted in one statement per flush. */
export function createStatsBatcher(write: (rows: AgentStatsRow[]) => Promise<void>, logger?: Logger): Batcher<AgentStatsRow> {
  return new Batcher({ name: "stats", ...STATS_BATCH, flush: write, logger });
}

/**
 * The metadata batcher: results of many agents written (newest per agent+key) and announced on
 * `workspace_agent_metadata_batch` in one statement per flush.
 */
export function createMetadataBatcher(
  write: (updates: MetadataUpdate[]) => Promise<void>,
  intervalMs: number,
  logger?: Logger,
): Batcher<MetadataUpdate> {
  return new Batcher({ name: "metadata", ...METADATA_BATCH, intervalMs, flush: write, logger });
}
