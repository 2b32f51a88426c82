import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  BatchCreateLogsResponseSchema,
  Log_LevelSchema,
  type BatchCreateLogsRequest,
  type BatchCreateLogsResponse,
} from "../../gen/coder/agent/v2/agent_pb.js";
import type { AgentIdentity } from "../auth/agent-identity.js";
import { LOG_LEVELS, NIL_UUID, type LogLevel } from "../db/enums.js";
import { agentLogsChannel } from "../db/events.js";
import { EXTERNAL_LOG_SOURCE, insertLogSources } from "../db/queries/log-sources.js";
import { insertLogBatch, setLogsOverflowed, type InsertLogBatchResult } from "../db/queries/logs.js";
import { enumMapping } from "../protocol/enum-mapping.js";
import { agentNotFound, callerIdentity } from "./caller.js";
import type { AgentApiContext } from "./context.js";
import { MAX_LOG_LINES_PER_BATCH } from "./limits.js";
import { internal, invalid } from "./rpc-errors.js";
import { uuidFromBytes } from "./uuid-bytes.js";

/** `workspace_agent_logs.output` is varchar(1024): a longer line can't be stored. */
export const MAX_LOG_LINE_CHARS = 1024;

const LEVELS = enumMapping(Log_LevelSchema, LOG_LEVELS);

/**
 * BatchCreateLogs: one statement per batch at server time, capped at 1 MiB per agent, where every
 * line counts its bytes plus a per-line overhead, under one of the agent's own log sources (NotFound
 * otherwise). The batch that would cross the cap, or has more lines than the cap can hold, is not stored; it flips `logs_overflowed`, after which
 * every call answers `log_limit_exceeded` without touching the logs.
 *
 * A well-formed batch under a provisioned source takes one round trip: its insert statement is
 * also the agent re-read (NotFound once deleted) and the overflow check. Everything else (an empty
 * batch, a nil or bad source id, a line too long, a race with a delete) goes the long way, re-read
 * first, so the answers come in coderd's order: NotFound, overflow, empty, bad source, long line.
 */
export function logsApi(api: AgentApiContext) {
  /** A batch that crosses the cap: the flag and the overflow event, then `log_limit_exceeded`. */
  const overflow = async (identity: AgentIdentity): Promise<BatchCreateLogsResponse> => {
    // The answer is the same whether or not the flag was written; the next batch will try again.
    await setLogsOverflowed(api.db, identity.agentId, true).catch((err: unknown) => api.logger.error({ err, agent_id: identity.agentId }, "set logs overflowed"));
    await api.publishWorkspaceEvent(identity.ownerId, { kind: "agt_logs_overflow", workspace_id: identity.workspaceId, agent_id: identity.agentId });
    return create(BatchCreateLogsResponseSchema, { logLimitExceeded: true });
  };

  /** After the insert: the overflow flag, or the first-logs event. */
  const finish = async (identity: AgentIdentity, logSourceId: string, result: InsertLogBatchResult): Promise<BatchCreateLogsResponse | undefined> => {
    switch (result.status) {
      case "agent_not_found":
        throw agentNotFound(identity.agentId);
      case "source_not_found":
        // Unknown and another agent's alike: nothing to learn about other agents' sources.
        throw new ConnectError(`log source ${logSourceId} not found`, Code.NotFound);
      case "already_overflowed":
        return create(BatchCreateLogsResponseSchema, { logLimitExceeded: true });
      case "agent_changed":
        return undefined;
      case "overflowed":
        return overflow(identity);
      case "stored":
        if (result.previousLength === 0) {
          await api.publishWorkspaceEvent(identity.ownerId, { kind: "agt_first_logs", workspace_id: identity.workspaceId, agent_id: identity.agentId });
        }
        return create(BatchCreateLogsResponseSchema);
    }
  };

  const insert = (agentId: string, logSourceId: string, lines: { output: string; level: LogLevel }[]) =>
    insertLogBatch(api.db, { agentId, logSourceId, createdAt: api.clock(), lines, notifyChannel: agentLogsChannel(agentId) }).catch((err: unknown) => {
      throw internal("insert workspace agent logs", err);
    });

  /** The long way: re-read the agent, then validate and insert in coderd's order. */
  const viaReRead = async (req: BatchCreateLogsRequest, ctx: HandlerContext): Promise<BatchCreateLogsResponse> => {
    const { identity, agent } = await api.loadCallerRow(ctx);
    if (agent.logsOverflowed) return create(BatchCreateLogsResponseSchema, { logLimitExceeded: true });
    if (req.logs.length === 0) return create(BatchCreateLogsResponseSchema);
    // More lines than an agent can ever store: refused as crossing the cap, before any per-line work.
    if (req.logs.length > MAX_LOG_LINES_PER_BATCH) return overflow(identity);
    let { logSourceId, lines } = parseBatch(req);
    if (logSourceId === NIL_UUID) {
      // Legacy clients send no source: file their lines under the fixed External source.
      logSourceId = EXTERNAL_LOG_SOURCE.id;
      await insertLogSources(api.db, { agentId: agent.id, createdAt: api.clock(), sources: [EXTERNAL_LOG_SOURCE] }).catch((err: unknown) => {
        throw internal("insert external workspace agent log source", err);
      });
    }
    const answer = await finish(identity, logSourceId, await insert(agent.id, logSourceId, lines));
    if (answer !== undefined) return answer;
    // Deleted or overflowed since the re-read: read again to say which.
    const again = await api.loadCallerRow(ctx);
    if (again.agent.logsOverflowed) return create(BatchCreateLogsResponseSchema, { logLimitExceeded: true });
    throw internal("insert workspace agent logs", new Error("the agent changed during the insert"));
  };

  return {
    async batchCreateLogs(req: BatchCreateLogsRequest, ctx: HandlerContext): Promise<BatchCreateLogsResponse> {
      const batch = req.logs.length > 0 && req.logs.length <= MAX_LOG_LINES_PER_BATCH ? tryParseBatch(req) : undefined;
      if (batch === undefined || batch.logSourceId === NIL_UUID) return viaReRead(req, ctx);
      const identity = callerIdentity(ctx);
      return (await finish(identity, batch.logSourceId, await insert(identity.agentId, batch.logSourceId, batch.lines))) ?? viaReRead(req, ctx);
    },
  };
}

/** The source id and the lines of a batch; throws InvalidArgument. */
function parseBatch(req: BatchCreateLogsRequest): { logSourceId: string; lines: { output: string; level: LogLevel }[] } {
  const logSourceId = uuidFromBytes(req.logSourceId, "parse log source ID");
  const lines = req.logs.map((log, i) => {
    if (log.output.length > MAX_LOG_LINE_CHARS) {
      // UTF-16 length over-counts astral characters; varchar counts code points.
      const chars = [...log.output].length;
      if (chars > MAX_LOG_LINE_CHARS) throw invalid(`log line ${i} is ${chars} characters long; the limit is ${MAX_LOG_LINE_CHARS}`);
    }
    return { output: log.output, level: LEVELS.toDb(log.level) ?? "info" };
  });
  return { logSourceId, lines };
}

/** {@link parseBatch}, or undefined when the batch is invalid (its error must wait for the re-read). */
function tryParseBatch(req: BatchCreateLogsRequest): ReturnType<typeof parseBatch> | undefined {
  try {
    return parseBatch(req);
  } catch {
    return undefined;
  }
}
