import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import {
  BatchCreateLogsResponseSchema,
  Log_Level,
  type BatchCreateLogsRequest,
  type BatchCreateLogsResponse,
} from "../../gen/coder/agent/v2/agent_pb.js";
import { NIL_UUID, type LogLevel } from "../db/enums.js";
import { agentLogsChannel } from "../db/events.js";
import { EXTERNAL_LOG_SOURCE } from "../db/queries/log-sources.js";
import type { InsertLogBatchResult } from "../db/queries/logs.js";
import type { Logger } from "../log.js";
import type { AgentIdentity } from "../auth/agent-identity.js";
import { agentNotFound, callerIdentity, internal, invalid, type LoadCaller } from "./caller.js";
import type { Clock, PublishWorkspaceEventFn } from "./publish.js";
import { uuidFromBytes } from "./uuid-bytes.js";

/** `workspace_agent_logs.output` is varchar(1024): a longer line can't be stored (agent-api.md §5). */
export const MAX_LOG_LINE_CHARS = 1024;

/** What BatchCreateLogs needs (agent-api.md §2.8). */
export interface LogsDeps {
  loadCaller: LoadCaller;
  /** Adds the External source to an agent; an existing one is kept. */
  ensureExternalLogSource(agentId: string, now: Date): Promise<void>;
  /**
   * One statement: the agent re-read (nothing written if it is deleted or overflowed), the rows,
   * their bytes added to logs_length under the 1 MiB cap, and the `{"created_after"}` event on
   * `notifyChannel` when they were stored.
   */
  insertLogs(p: { agentId: string; logSourceId: string; createdAt: Date; lines: { output: string; level: LogLevel }[]; notifyChannel: string }): Promise<InsertLogBatchResult>;
  setLogsOverflowed(agentId: string): Promise<void>;
  publishWorkspaceEvent: PublishWorkspaceEventFn;
  now: Clock;
  logger: Logger;
}

const LEVELS: Partial<Record<Log_Level, LogLevel>> = {
  [Log_Level.TRACE]: "trace",
  [Log_Level.DEBUG]: "debug",
  [Log_Level.INFO]: "info",
  [Log_Level.WARN]: "warn",
  [Log_Level.ERROR]: "error",
};

/**
 * BatchCreateLogs: one statement per batch at server time, capped at 1 MiB of output per agent.
 * The batch that would cross the cap is not stored; it flips `logs_overflowed`, after which
 * every call answers `log_limit_exceeded` without touching the logs.
 *
 * A well-formed batch under a provisioned source takes one round trip: its insert statement is
 * also the agent re-read (NotFound once deleted) and the overflow check. Everything else (an empty
 * batch, a nil or bad source id, a line too long, a race with a delete) goes the long way, re-read
 * first, so the order of §2.8's answers is unchanged.
 */
export function logsApi(deps: LogsDeps) {
  /** After the insert: the flag and events of §2.8 steps 7 and 9. */
  const finish = async (identity: AgentIdentity, result: InsertLogBatchResult): Promise<BatchCreateLogsResponse | undefined> => {
    const event = { workspace_id: identity.workspaceId, agent_id: identity.agentId };
    switch (result.status) {
      case "agent_not_found":
        throw agentNotFound(identity.agentId);
      case "already_overflowed":
        return create(BatchCreateLogsResponseSchema, { logLimitExceeded: true });
      case "agent_changed":
        return undefined;
      case "overflowed":
        // The answer is the same whether or not the flag was written; the next batch will try again.
        await deps.setLogsOverflowed(identity.agentId).catch((err: unknown) => deps.logger.error({ err, agent_id: identity.agentId }, "set logs overflowed"));
        await deps.publishWorkspaceEvent(identity.ownerId, { kind: "agt_logs_overflow", ...event });
        return create(BatchCreateLogsResponseSchema, { logLimitExceeded: true });
      case "stored":
        if (result.previousLength === 0) await deps.publishWorkspaceEvent(identity.ownerId, { kind: "agt_first_logs", ...event });
        return create(BatchCreateLogsResponseSchema);
    }
  };

  const insert = (agentId: string, logSourceId: string, lines: { output: string; level: LogLevel }[]) =>
    deps.insertLogs({ agentId, logSourceId, createdAt: deps.now(), lines, notifyChannel: agentLogsChannel(agentId) }).catch((err: unknown) => {
      throw internal("insert workspace agent logs", err);
    });

  /** The long way: re-read the agent, then validate and insert in §2.8's order. */
  const viaReRead = async (req: BatchCreateLogsRequest, ctx: HandlerContext): Promise<BatchCreateLogsResponse> => {
    const { identity, agent } = await deps.loadCaller(ctx);
    if (agent.logsOverflowed) return create(BatchCreateLogsResponseSchema, { logLimitExceeded: true });
    if (req.logs.length === 0) return create(BatchCreateLogsResponseSchema);
    let { logSourceId, lines } = parseBatch(req);
    if (logSourceId === NIL_UUID) {
      // Legacy clients send no source: file their lines under the fixed External source.
      logSourceId = EXTERNAL_LOG_SOURCE.id;
      await deps.ensureExternalLogSource(agent.id, deps.now()).catch((err: unknown) => {
        throw internal("insert external workspace agent log source", err);
      });
    }
    const answer = await finish(identity, await insert(agent.id, logSourceId, lines));
    if (answer !== undefined) return answer;
    // Deleted or overflowed since the re-read: read again to say which.
    const again = await deps.loadCaller(ctx);
    if (again.agent.logsOverflowed) return create(BatchCreateLogsResponseSchema, { logLimitExceeded: true });
    throw internal("insert workspace agent logs", new Error("the agent changed during the insert"));
  };

  return {
    async batchCreateLogs(req: BatchCreateLogsRequest, ctx: HandlerContext): Promise<BatchCreateLogsResponse> {
      const batch = req.logs.length > 0 ? tryParseBatch(req) : undefined;
      if (batch === undefined || batch.logSourceId === NIL_UUID) return viaReRead(req, ctx);
      const identity = callerIdentity(ctx);
      return (await finish(identity, await insert(identity.agentId, batch.logSourceId, batch.lines))) ?? viaReRead(req, ctx);
    },
  };
}

/** §2.8 steps 3 and 5: the source id and the lines; throws InvalidArgument. */
function parseBatch(req: BatchCreateLogsRequest): { logSourceId: string; lines: { output: string; level: LogLevel }[] } {
  const logSourceId = uuidFromBytes(req.logSourceId, "parse log source ID");
  const lines = req.logs.map((log, i) => {
    if (log.output.length > MAX_LOG_LINE_CHARS) {
      // UTF-16 length over-counts astral characters; varchar counts code points.
      const chars = [...log.output].length;
      if (chars > MAX_LOG_LINE_CHARS) throw invalid(`log line ${i} is ${chars} characters long; the limit is ${MAX_LOG_LINE_CHARS}`);
    }
    return { output: log.output, level: LEVELS[log.level] ?? "info" };
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
