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
import { internal, invalid, type LoadCaller } from "./caller.js";
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
   * One statement: the rows, their bytes added to logs_length under the 1 MiB cap, and the
   * `{"created_after"}` event on `notifyChannel` when they were stored.
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
 */
export function logsApi(deps: LogsDeps) {
  return {
    async batchCreateLogs(req: BatchCreateLogsRequest, ctx: HandlerContext): Promise<BatchCreateLogsResponse> {
      const { identity, agent } = await deps.loadCaller(ctx);
      if (agent.logsOverflowed) return create(BatchCreateLogsResponseSchema, { logLimitExceeded: true });
      if (req.logs.length === 0) return create(BatchCreateLogsResponseSchema);
      let logSourceId = uuidFromBytes(req.logSourceId, "parse log source ID");
      const lines = req.logs.map((log, i) => {
        if (log.output.length > MAX_LOG_LINE_CHARS) {
          // UTF-16 length over-counts astral characters; varchar counts code points.
          const chars = [...log.output].length;
          if (chars > MAX_LOG_LINE_CHARS) throw invalid(`log line ${i} is ${chars} characters long; the limit is ${MAX_LOG_LINE_CHARS}`);
        }
        return { output: log.output, level: LEVELS[log.level] ?? "info" };
      });
      const now = deps.now();
      if (logSourceId === NIL_UUID) {
        // Legacy clients send no source: file their lines under the fixed External source.
        logSourceId = EXTERNAL_LOG_SOURCE.id;
        await deps.ensureExternalLogSource(agent.id, now).catch((err: unknown) => {
          throw internal("insert external workspace agent log source", err);
        });
      }
      const result = await deps.insertLogs({ agentId: agent.id, logSourceId, createdAt: now, lines, notifyChannel: agentLogsChannel(agent.id) }).catch((err: unknown) => {
        throw internal("insert workspace agent logs", err);
      });
      const event = { workspace_id: identity.workspaceId, agent_id: agent.id };
      if (result.overflowed) {
        // The answer is the same whether or not the flag was written; the next batch will try again.
        await deps.setLogsOverflowed(agent.id).catch((err: unknown) => deps.logger.error({ err, agent_id: agent.id }, "set logs overflowed"));
        await deps.publishWorkspaceEvent(identity.ownerId, { kind: "agt_logs_overflow", ...event });
        return create(BatchCreateLogsResponseSchema, { logLimitExceeded: true });
      }
      if (result.previousLength === 0) await deps.publishWorkspaceEvent(identity.ownerId, { kind: "agt_first_logs", ...event });
      return create(BatchCreateLogsResponseSchema);
    },
  };
}
