import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { ReportBoundaryLogsResponseSchema, type ReportBoundaryLogsRequest, type ReportBoundaryLogsResponse } from "../../gen/coder/agent/v2/agent_pb.js";
import type { AgentApiContext } from "./context.js";
import { MAX_BOUNDARY_LOGS_PER_CALL } from "./limits.js";

/**
 * ReportBoundaryLogs: the network "boundary" around an agent's processes reports what it allowed
 * and denied; agentgate stores none of it and writes each entry to the server log at info, with
 * the agent's fields, for the operator's log pipeline.
 */
export function boundaryLogsApi(api: AgentApiContext) {
  return {
    async reportBoundaryLogs(req: ReportBoundaryLogsRequest, ctx: HandlerContext): Promise<ReportBoundaryLogsResponse> {
      const { identity, agent } = await api.loadCaller(ctx);
      if (req.logs.length > MAX_BOUNDARY_LOGS_PER_CALL) {
        throw new ConnectError(`${req.logs.length} boundary log entries; at most ${MAX_BOUNDARY_LOGS_PER_CALL} per call`, Code.ResourceExhausted);
      }
      const log = api.logger.child({
        agent_id: agent.id,
        agent_name: agent.name,
        workspace_id: identity.workspaceId,
        workspace_name: identity.workspaceName,
        owner: identity.ownerUsername,
        session_id: req.sessionId,
        confined_process_name: req.confinedProcessName,
      });
      for (const entry of req.logs) {
        const http = entry.resource.case === "httpRequest" ? entry.resource.value : undefined;
        log.info(
          {
            allowed: entry.allowed,
            time: entry.time === undefined ? undefined : timestampDate(entry.time).toISOString(),
            sequence_number: entry.sequenceNumber,
            http_method: http?.method,
            http_url: http?.url,
            matched_rule: http?.matchedRule,
          },
          "boundary request",
        );
      }
      return create(ReportBoundaryLogsResponseSchema);
    },
  };
}
