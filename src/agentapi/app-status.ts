import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  UpdateAppStatusRequest_AppStatusState,
  UpdateAppStatusResponseSchema,
  type UpdateAppStatusRequest,
  type UpdateAppStatusResponse,
} from "../../gen/coder/agent/v2/agent_pb.js";
import type { AppStatusState } from "../db/enums.js";
import type { AppStatus } from "../db/queries/app-statuses.js";
import type { WorkspaceApp } from "../db/queries/apps.js";
import { internal, invalid, type LoadCaller } from "./caller.js";
import type { Clock, PublishWorkspaceEventFn } from "./publish.js";

/** Longest status message, in characters (agent-api.md §2.14): a one-line summary for a dashboard. */
export const MAX_APP_STATUS_MESSAGE_CHARS = 160;

/** What UpdateAppStatus needs. */
export interface AppStatusDeps {
  loadCaller: LoadCaller;
  getAppBySlug(agentId: string, slug: string): Promise<WorkspaceApp | undefined>;
  insertAppStatus(s: AppStatus): Promise<void>;
  publishWorkspaceEvent: PublishWorkspaceEventFn;
  now: Clock;
}

const STATES: Partial<Record<UpdateAppStatusRequest_AppStatusState, AppStatusState>> = {
  [UpdateAppStatusRequest_AppStatusState.WORKING]: "working",
  [UpdateAppStatusRequest_AppStatusState.IDLE]: "idle",
  [UpdateAppStatusRequest_AppStatusState.COMPLETE]: "complete",
  [UpdateAppStatusRequest_AppStatusState.FAILURE]: "failure",
};

/** UpdateAppStatus: what an app (an AI agent, typically) is doing, stored and announced. */
export function appStatusApi(deps: AppStatusDeps) {
  return {
    async updateAppStatus(req: UpdateAppStatusRequest, ctx: HandlerContext): Promise<UpdateAppStatusResponse> {
      const { identity, agent } = await deps.loadCaller(ctx);
      if ([...req.message].length > MAX_APP_STATUS_MESSAGE_CHARS) throw invalid("Message is too long.");
      const state = STATES[req.state];
      if (state === undefined) throw invalid("Invalid state provided.");
      const app = await deps.getAppBySlug(agent.id, req.slug).catch((err: unknown) => {
        throw internal("Failed to get workspace app.", err);
      });
      if (app === undefined) throw new ConnectError("Failed to get workspace app.", Code.NotFound);
      try {
        await deps.insertAppStatus({
          id: randomUUID(),
          createdAt: deps.now(),
          workspaceId: identity.workspaceId,
          agentId: agent.id,
          appId: app.id,
          state,
          message: sanitizeMessage(req.message),
          uri: req.uri === "" ? null : req.uri,
        });
      } catch (err) {
        throw internal("insert workspace app status", err);
      }
      await deps.publishWorkspaceEvent(identity.ownerId, { kind: "agt_app_status_update", workspace_id: identity.workspaceId, agent_id: agent.id });
      return create(UpdateAppStatusResponseSchema);
    },
  };
}

/** One clean line for a dashboard: control characters (newlines, escapes) become spaces, ends trimmed. */
function sanitizeMessage(message: string): string {
  // eslint-disable-next-line no-control-regex
  return message.replace(/[\u0000-\u001f\u007f-\u009f]+/g, " ").trim();
}
