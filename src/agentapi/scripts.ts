import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  Timing_Stage,
  Timing_Status,
  WorkspaceAgentScriptCompletedResponseSchema,
  type WorkspaceAgentScriptCompletedRequest,
  type WorkspaceAgentScriptCompletedResponse,
} from "../../gen/coder/agent/v2/agent_pb.js";
import type { ScriptTimingStage, ScriptTimingStatus } from "../db/enums.js";
import { isForeignKeyViolation, isUniqueViolation } from "../db/errors.js";
import type { ScriptTiming } from "../db/queries/script-timings.js";
import { internal, invalid, type LoadCaller } from "./caller.js";
import { uuidFromBytes } from "./uuid-bytes.js";

/** What ScriptCompleted needs (agent-api.md §2.10). */
export interface ScriptsDeps {
  loadCaller: LoadCaller;
  insertScriptTiming(t: ScriptTiming): Promise<void>;
}

const STAGES: Partial<Record<Timing_Stage, ScriptTimingStage>> = {
  [Timing_Stage.START]: "start",
  [Timing_Stage.STOP]: "stop",
  [Timing_Stage.CRON]: "cron",
};

const STATUSES: Partial<Record<Timing_Status, ScriptTimingStatus>> = {
  [Timing_Status.OK]: "ok",
  [Timing_Status.EXIT_FAILURE]: "exit_failure",
  [Timing_Status.TIMED_OUT]: "timed_out",
  [Timing_Status.PIPES_LEFT_OPEN]: "pipes_left_open",
};

/** ScriptCompleted: records one run of a script (start, end, exit code, stage, status). */
export function scriptsApi(deps: ScriptsDeps) {
  return {
    async scriptCompleted(req: WorkspaceAgentScriptCompletedRequest, ctx: HandlerContext): Promise<WorkspaceAgentScriptCompletedResponse> {
      await deps.loadCaller(ctx);
      const timing = req.timing;
      if (timing === undefined) throw invalid("timing is required");
      const scriptId = uuidFromBytes(timing.scriptId, "script id from bytes");
      const stage = STAGES[timing.stage];
      if (stage === undefined) throw invalid(`unknown script timing stage ${timing.stage}`);
      const status = STATUSES[timing.status];
      if (status === undefined) throw invalid(`unknown script timing status ${timing.status}`);
      // Coder would store an absent time as 1970; a run without its times says nothing useful.
      if (timing.start === undefined || timing.end === undefined) throw invalid("timing start and end are required");
      try {
        await deps.insertScriptTiming({
          scriptId,
          startedAt: timestampDate(timing.start),
          endedAt: timestampDate(timing.end),
          exitCode: timing.exitCode,
          stage,
          status,
        });
      } catch (err) {
        if (isForeignKeyViolation(err)) throw new ConnectError(`script ${scriptId} not found`, Code.NotFound);
        if (isUniqueViolation(err)) throw new ConnectError(`a timing of script ${scriptId} starting at that time is already recorded`, Code.AlreadyExists);
        throw internal("insert script timing", err);
      }
      return create(WorkspaceAgentScriptCompletedResponseSchema);
    },
  };
}
