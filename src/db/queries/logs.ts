import type { Queryable } from "../database.js";
import type { LogLevel } from "../enums.js";
import { isCheckViolation } from "../errors.js";

/** Per-agent cap on `logs_length` (the `max_logs_length` check), 1 MiB as Coder's. */
export const MAX_LOGS_LENGTH = 1_048_576;

/**
 * What every line adds to `logs_length` on top of its output bytes: a row costs storage whatever its
 * text, so empty lines count too (Coder counts only the text).
 */
export const LOG_LINE_OVERHEAD_BYTES = 32;

/** The `logs_length` a batch of `outputs` adds: their UTF-8 bytes plus the per-line overhead. */
export function logBatchLength(outputs: readonly string[]): number {
  return outputs.reduce((n, o) => n + Buffer.byteLength(o) + LOG_LINE_OVERHEAD_BYTES, 0);
}

/** A `workspace_agent_logs` row. */
export interface AgentLog {
  /** int8, as number. */
  id: number;
  agentId: string;
  createdAt: Date;
  output: string;
  level: LogLevel;
  logSourceId: string;
}

/** Result of {@link insertLogBatch}: the id range of the new rows instead of the rows. */
export type InsertLogBatchResult =
  | { status: "stored"; firstId: number; lastId: number; /** logs_length before this insert. */ previousLength: number }
  /** This batch would have crossed {@link MAX_LOGS_LENGTH}: nothing stored (the caller sets the flag). */
  | { status: "overflowed" }
  /** `logs_overflowed` was already set: nothing written. */
  | { status: "already_overflowed" }
  /** No such agent, or it is deleted: nothing written. */
  | { status: "agent_not_found" }
  /** The log source isn't one of this agent's (unknown, or another agent's): nothing written. */
  | { status: "source_not_found" }
  /**
   * The agent row changed between the statement's read and its update (deleted or overflowed by
   * another transaction meanwhile): nothing written; read the agent again to know which.
   */
  | { status: "agent_changed" };

/**
 * Inserts a batch of log lines for BatchCreateLogs in one statement that is also the RPC's agent
 * re-read (every RPC re-reads its agent, so a deleted one answers NotFound): it finds the agent
 * (not deleted), writes nothing if it is gone or its `logs_overflowed` is set, else inserts the
 * lines and adds their {@link logBatchLength} to logs_length under the same cap, only under one of
 * the agent's own log sources. It sends back only the new ids' range and the previous length, not every row
 * (BatchCreateLogs needs no more, and echoing 500 lines back costs as much as sending them).
 * `lines` must not be empty. With `notifyChannel`, the same statement also sends
 * `{"created_after": <first new id − 1>}` on it (the `agent-logs:<agent>` event) when it stored
 * rows. One round trip and one commit per batch: under ingestion load each extra round trip was
 * a pool slot held and a queue behind it.
 */
export async function insertLogBatch(
  q: Queryable,
  p: { agentId: string; logSourceId: string; createdAt: Date; lines: { output: string; level: LogLevel }[]; notifyChannel?: string },
): Promise<InsertLogBatchResult> {
  const outputs = p.lines.map((l) => l.output);
  const length = logBatchLength(outputs);
  try {
    // `caller` reads the row in the statement's snapshot; the UPDATE re-checks the same conditions
    // on the newest row version, so a concurrent delete or overflow shows as caller-without-update.
    const { rows } = await q.query<{ found: boolean; wasOverflowed: boolean | null; sourceFound: boolean; firstId: number | null; lastId: number | null; newLength: number | null }>(
      `WITH caller AS (
         SELECT logs_overflowed FROM workspace_agents WHERE id = $1 AND NOT deleted
       ), source AS (
         SELECT 1 FROM workspace_agent_log_sources WHERE workspace_agent_id = $1 AND id = $6
       ), new_length AS (
         UPDATE workspace_agents SET logs_length = logs_length + $2
         WHERE id = $1 AND NOT deleted AND NOT logs_overflowed AND EXISTS (SELECT 1 FROM source)
         RETURNING logs_length
       ), inserted AS (
         INSERT INTO workspace_agent_logs (agent_id, created_at, output, level, log_source_id)
         SELECT $1::uuid, $3::timestamptz, u.output, u.level, $6::uuid
         FROM unnest($4::text[], $5::text[]::log_level[]) WITH ORDINALITY AS u(output, level, n)
         WHERE EXISTS (SELECT 1 FROM new_length)
         ORDER BY u.n
         RETURNING id
       )
       SELECT EXISTS (SELECT 1 FROM caller) AS found, (SELECT logs_overflowed FROM caller) AS "wasOverflowed",
              EXISTS (SELECT 1 FROM source) AS "sourceFound",
              r."firstId", r."lastId", r."newLength",
              CASE WHEN $7::text IS NOT NULL AND r."firstId" IS NOT NULL
                   THEN pg_notify($7, json_build_object('created_after', r."firstId" - 1)::text) END
       FROM (SELECT min(id) AS "firstId", max(id) AS "lastId", (SELECT logs_length FROM new_length) AS "newLength" FROM inserted) r`,
      [p.agentId, length, p.createdAt, outputs, p.lines.map((l) => l.level), p.logSourceId, p.notifyChannel ?? null],
    );
    const r = rows[0]!;
    if (!r.found) return { status: "agent_not_found" };
    if (r.wasOverflowed) return { status: "already_overflowed" };
    if (!r.sourceFound) return { status: "source_not_found" };
    if (r.firstId === null || r.newLength === null) return { status: "agent_changed" };
    return { status: "stored", firstId: Number(r.firstId), lastId: Number(r.lastId), previousLength: r.newLength - length };
  } catch (err) {
    // The CHECK fails only in the UPDATE, so the agent was there and not overflowed.
    if (isCheckViolation(err, "max_logs_length")) return { status: "overflowed" };
    throw err;
  }
}

/** `UpdateWorkspaceAgentLogOverflowByID`. */
export async function setLogsOverflowed(q: Queryable, agentId: string, overflowed: boolean): Promise<void> {
  await q.query("UPDATE workspace_agents SET logs_overflowed = $2 WHERE id = $1", [agentId, overflowed]);
}

/** An agent's logs with id greater than `afterId`, oldest first, at most `limit`. */
export async function listLogsAfter(q: Queryable, p: { agentId: string; afterId: number; limit?: number }): Promise<AgentLog[]> {
  const { rows } = await q.query<AgentLog>(
    `SELECT id, agent_id AS "agentId", created_at AS "createdAt", output, level, log_source_id AS "logSourceId"
     FROM workspace_agent_logs WHERE agent_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
    [p.agentId, p.afterId, p.limit ?? 10_000],
  );
  return rows;
}

/** A log line with the display name of its source, as `agentgate status WORKSPACE` shows it. */
export interface AgentLogWithSource extends AgentLog {
  /** Empty when the source row is missing (a source id the agent never declared). */
  sourceDisplayName: string;
}

/**
 * An agent's last `limit` log lines, oldest first, each with its source's display name. Reads
 * backwards from the newest id, so the cost is `limit` rows however long the log is.
 */
export async function listLatestLogs(q: Queryable, p: { agentId: string; limit: number }): Promise<AgentLogWithSource[]> {
  const { rows } = await q.query<AgentLogWithSource>(
    `SELECT * FROM (
       SELECT l.id, l.agent_id AS "agentId", l.created_at AS "createdAt", l.output, l.level, l.log_source_id AS "logSourceId",
              coalesce(s.display_name, '') AS "sourceDisplayName"
       FROM workspace_agent_logs l
       LEFT JOIN workspace_agent_log_sources s ON s.workspace_agent_id = l.agent_id AND s.id = l.log_source_id
       WHERE l.agent_id = $1 ORDER BY l.id DESC LIMIT $2
     ) latest ORDER BY id`,
    [p.agentId, p.limit],
  );
  return rows;
}
