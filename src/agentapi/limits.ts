/**
 * How much an agent may send in the repeated fields of one call, and keep on the server over time.
 * Every list an agent sends becomes rows, queue slots or loop iterations, so each has a bound; the
 * README's "Limits of what an agent sends" table lists them. Past a bound a call is refused whole
 * (nothing written), except where a row says otherwise.
 */

import { LOG_LINE_OVERHEAD_BYTES, MAX_LOGS_LENGTH } from "../db/queries/logs.js";

export { LOG_LINE_OVERHEAD_BYTES, MAX_LOGS_LENGTH };

/**
 * Lines one agent can ever store: every line costs {@link LOG_LINE_OVERHEAD_BYTES} of the 1 MiB cap
 * even when empty, so 32,768.
 */
export const MAX_LOG_LINES_PER_AGENT = MAX_LOGS_LENGTH / LOG_LINE_OVERHEAD_BYTES;

/**
 * Lines in one BatchCreateLogs: as many as an agent can ever store, so a larger batch could never
 * fit and is refused like one crossing the cap (`log_limit_exceeded`), before any work on its lines.
 */
export const MAX_LOG_LINES_PER_BATCH = MAX_LOG_LINES_PER_AGENT;

/** Entries in one BatchUpdateMetadata (each takes a slot in the shared metadata queue). */
export const MAX_METADATA_ENTRIES_PER_CALL = 256;

/** Updates in one BatchUpdateAppHealths. */
export const MAX_APP_HEALTH_UPDATES_PER_CALL = 256;

/** Entries in each map of an UpdateStats report (`connections_by_proto`, `session_counts`). */
export const MAX_STATS_MAP_ENTRIES = 64;

/** Live (not deleted) sub-agents one agent may have. */
export const MAX_SUB_AGENTS_PER_AGENT = 32;

/** Apps in one CreateSubAgent. */
export const MAX_APPS_PER_SUB_AGENT = 64;

/** Display apps in one CreateSubAgent: more than there are kinds is a repeat. */
export const MAX_DISPLAY_APPS_PER_SUB_AGENT = 16;

/** Datapoints in one PushResourcesMonitoringUsage (the agent pushes a few at a time). */
export const MAX_RESOURCE_DATAPOINTS_PER_CALL = 256;

/** Volumes in one resource-monitoring datapoint. */
export const MAX_VOLUMES_PER_DATAPOINT = 64;

/** Entries in one ReportBoundaryLogs: each becomes a line of the server's log. */
export const MAX_BOUNDARY_LOGS_PER_CALL = 1_000;
