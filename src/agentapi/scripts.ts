import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  Timing_StageSchema,
  Timing_StatusSchema,
  WorkspaceAgentScriptCompletedResponseSchema,
  type WorkspaceAgentScriptCompletedRequest,
  type WorkspaceAgentScriptCompletedResponse,
} from "../../gen/coder/agent/v2/agent_pb.js";
import { SCRIPT_TIMING_STAGES, SCRIPT_TIMING_STATUSES } from "../db/enums.js";
import { isForeignKeyViolation, isUniqueViolation } from "../db/errors.js";
import { insertScriptTiming } from "../db/queries/script-timings.js";
import { enumMapping } from "../protocol/enum-mapping.js";
import type { AgentApiContext } from "./context.js";
import { internal, invalid } from "./rpc-errors.js";
import { uuidFromBytes } from "./uuid-bytes.js";

const STAGES = enumMapping(Timing_StageSchema, SCRIPT_TIMING_STAGES);
const STATUSES = enumMapping(Timing_StatusSchema, SCRIPT_TIMING_STATUSES);

/** ScriptCompleted: records one run of one of the caller's scripts (start, end, exit code, stage, status). */
export function scriptsApi(api: AgentApiContext) {
  return {
    async scriptCompleted(req: WorkspaceAgentScriptCompletedRequest, ctx: HandlerContext): Promise<WorkspaceAgentScriptCompletedResponse> {
      const { agent } = await api.loadCaller(ctx);
      const timing = req.timing;
      if (timing === undefined) throw invalid("timing is required");
      const scriptId = uuidFromBytes(timing.scriptId, "script id from bytes");
      const stage = STAGES.toDb(timing.stage);
      if (stage === undefined) throw invalid(`unknown script timing stage ${timing.stage}`);
      const status = STATUSES.toDb(timing.status);
      if (status === undefined) throw invalid(`unknown script timing status ${timing.status}`);
      // Coder would store an absent time as 1970; a run without its times says nothing useful.
      if (timing.start === undefined || timing.end === undefined) throw invalid("timing start and end are required");
      let stored: boolean;
      try {
        stored = await insertScriptTiming(api.db, agent.id, {
          scriptId,
          startedAt: timestampDate(timing.start),
          endedAt: timestampDate(timing.end),
          exitCode: timing.exitCode,
          stage,
          status,
        });
      } catch (err) {
        // The script was there when the statement read it and deleted before the insert.
        if (isForeignKeyViolation(err)) throw scriptNotFound(scriptId);
        if (isUniqueViolation(err)) throw new ConnectError(`a timing of script ${scriptId} starting at that time is already recorded`, Code.AlreadyExists);
        throw internal("insert script timing", err);
      }
      if (!stored) throw scriptNotFound(scriptId);
      return create(WorkspaceAgentScriptCompletedResponseSchema);
    },
  };
}

/** The one answer for a script id that isn't the caller's, whether or not another agent has it. */
function scriptNotFound(scriptId: string): ConnectError {
  return new ConnectError(`script ${scriptId} not found`, Code.NotFound);
}
